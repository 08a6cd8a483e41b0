// Generated and mutated configurations must give a result or a typed, located error:
// never a crash, never a hang. `npm run fuzz` runs many more cases than `npm test`.
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { parseAssignment } from '../../../engine/config/configuration.js';
import { ConfigError } from '../../../engine/config/errors.js';
import { ConfigReader } from '../../../engine/config/loader.js';
import { resolveConfiguration } from '../../../engine/config/resolve.js';

const RUNS = Number(process.env['SLAPMESH_FUZZ_RUNS'] ?? 2000);
const ROOT = '/virtual/profile';

const names = fc.constantFrom('a', 'b', 'c', 'buildout', 'versions', 'x-y', 's.1', 'ZEO/scripts');
const optionNames = fc.constantFrom('x', 'y', 'parts', 'recipe', 'location', 'offline', 'extends', 'url', 'list');
const conditions = fc.constantFrom('python3', 'python2', 'linux and bits64', 'sys.version_info < (3,8)', 'bad (', 'iron', '');
const words = fc.constantFrom('1', 'true', 'false', 'word', 'two words', '#', ';', ' ', '$', '$$', '{', '}');
const refs = fc.tuple(fc.constantFrom('', 'a', 'b', 'c', 'buildout', 'nosuch'), optionNames).map(([s, o]) => `\${${s}:${o}}`);
const oddRefs = fc.constantFrom('${nocolon}', '${a:b:c}', '${s/x:y}', '${a:', '$${a:x}', '${:_buildout_section_name_}', '${:_profile_base_location_}');
const value = fc.array(fc.oneof(words, refs, oddRefs), { maxLength: 5 }).map((parts) => parts.join(''));

const line = fc.oneof(
  fc.tuple(names, fc.option(conditions)).map(([n, c]) => (c === null ? `[${n}]` : `[${n}:${c}]`)),
  fc.tuple(optionNames, fc.constantFrom(' = ', ' += ', ' -= ', '=', ': '), value).map(([k, op, v]) => `${k}${op}${v}`),
  fc.tuple(fc.constantFrom('extends = ', 'extends += '), fc.array(fc.constantFrom('f0.cfg', 'f1.cfg', 'f2.cfg', 'sub/../f1.cfg', 'missing.cfg'), { maxLength: 3 }))
    .map(([k, files]) => k + files.join(' ')),
  names.map((n) => `<= ${n}`),
  value.map((v) => `  ${v}`),
  fc.constantFrom('', '# comment', '; comment', '\t', 'garbage line', '=> a b', '[', ']'),
);
const file = fc.array(line, { maxLength: 25 }).map((lines) => lines.join('\n'));
const tree = fc.record({ 'buildout.cfg': file, 'f0.cfg': file, 'f1.cfg': file, 'f2.cfg': file });

/** Random edits of a text: insertions of characters that matter to the syntax, and deletions. */
const mutated = fc.tuple(file, fc.array(fc.tuple(fc.nat(), fc.constantFrom('\n', '\r', ' ', '\t', '\x0b', '\u00a0', '\u2028', '[', ']', '$', '{', '}', ':', '=', '+', '-', '<', '\x00', '\ufeff', ''), fc.boolean()), { maxLength: 8 }))
  .map(([text, edits]) => edits.reduce((t, [at, ch, del]) => {
    const i = t.length ? at % t.length : 0;
    return del ? t.slice(0, i) + t.slice(i + 1) : t.slice(0, i) + ch + t.slice(i);
  }, text));

function readerFor(files: Record<string, string>): ConfigReader {
  return new ConfigReader((path) => {
    const relative = path.startsWith(`${ROOT}/`) ? path.slice(ROOT.length + 1) : undefined;
    const text = relative === undefined ? undefined : files[relative];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return new TextEncoder().encode(text);
  });
}

async function check(files: Record<string, string>, args: string[] = []): Promise<void> {
  try {
    const result = await resolveConfiguration({
      configFile: 'buildout.cfg', cwd: ROOT, reader: readerFor(files), assignments: args.map(parseAssignment),
    });
    for (const options of Object.values(result.sections)) {
      for (const v of Object.values(options)) assert.equal(typeof v, 'string');
    }
    for (const message of Object.values(result.errors)) assert.ok(message.length > 0);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    assert.ok(error.diagnostics.length > 0);
    for (const d of error.diagnostics) {
      assert.ok(d.file.length > 0 && d.line >= 1 && d.message.length > 0, JSON.stringify(d));
    }
  }
}

describe('engine/config properties', function () {
  this.timeout(0);

  it(`gives a result or a located error for generated configurations (${RUNS} cases)`, async () => {
    await fc.assert(fc.asyncProperty(tree, (files) => check(files)), { numRuns: RUNS, timeout: 2000 });
  });

  it(`gives a result or a located error for mutated configurations (${RUNS} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(mutated, file, (root, other) => check({ 'buildout.cfg': root, 'f0.cfg': other, 'f1.cfg': other })),
      { numRuns: RUNS, timeout: 2000 },
    );
  });

  it('gives a result or a located error with command-line assignments', async () => {
    const assignment = fc.tuple(fc.option(names), optionNames, fc.constantFrom('=', '+=', '-='), value)
      .map(([s, o, op, v]) => `${s === null ? '' : `${s}:`}${o}${op}${v}`);
    await fc.assert(
      fc.asyncProperty(tree, fc.array(assignment, { maxLength: 3 }), (files, args) => check(files, args)),
      { numRuns: Math.ceil(RUNS / 4), timeout: 2000 },
    );
  });

  it('survives deep reference chains and long macro chains', async () => {
    const n = 5000;
    const chain = Array.from({ length: n }, (_, i) => `[s${i}]\nx = \${s${i + 1}:x}\n<= s${i + 1}`).join('\n');
    await check({ 'buildout.cfg': `${chain}\n[s${n}]\nx = end\n` });
  });
});
