// `slapmesh simulate` as people run it: bad input refused in one line, --json parseable, --report written.
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli } from '../helpers/processes.js';
import { removeTree, writeTree } from '../helpers/files.js';

describe('cli: slapmesh simulate', function () {
  this.timeout(90_000);

  it('refuses an unknown scenario, listing the known ones', async () => {
    const { code, stdout, stderr } = await cli('simulate', 'stampede', '--nodes', '3');
    assert.equal(code, 1);
    assert.equal(stdout, '');
    assert.match(stderr, /^slapmesh: unknown scenario "stampede"; known: .*\bjoin\b.*\bplacement\b.*\bchurn\b.*\bmodel\b/);
    assert.equal(stderr.trim().split('\n').length, 1);
  });

  for (const [flag, value] of [['--nodes', '0'], ['--nodes', 'ten'], ['--requests', '-2'], ['--seed', '1.5']] as const) {
    it(`refuses ${flag} ${value} in one line`, async () => {
      const { code, stderr } = await cli('simulate', 'join', flag, value);
      assert.equal(code, 1);
      assert.match(stderr, new RegExp(`^slapmesh: ${flag} must be`));
    });
  }

  it('runs join on two nodes: --json prints the result as one JSON object, --report writes report.json and report.html', async () => {
    const dir = writeTree({});
    try {
      const { code, stdout, stderr } = await cli('simulate', 'join', '--nodes', '2', '--json', '--report', join(dir, 'report'));
      assert.equal(code, 0, stderr);
      const lines = stdout.trim().split('\n');
      assert.equal(lines.length, 1);
      const result = JSON.parse(lines[0]!) as { scenario: string; nodes: number; ok: boolean; assertions: { id: string; ok: boolean; violations: string[] }[]; metrics: Record<string, unknown> };
      assert.equal(result.scenario, 'join');
      assert.equal(result.nodes, 2);
      assert.equal(result.ok, true);
      assert.deepEqual(result.assertions.map((a) => [a.id, a.ok, a.violations]), [['every-node-joined', true, []], ['converged', true, []]]);
      assert.equal(result.metrics['converged'], true);
      assert.match(stderr, /report: .*report\.html/);
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'report', 'report.json'), 'utf8')).scenario, 'join');
      assert.ok(existsSync(join(dir, 'report', 'report.html')));
    } finally {
      removeTree(dir);
    }
  });
});
