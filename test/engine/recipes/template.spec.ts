import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { install, InstallError, type InstallReport } from '../../../engine/install/installer.js';
import { removeTree, writeTree } from '../../helpers/files.js';

describe('engine/recipes slapos.recipe.template', () => {
  let dir: string;
  const run = (text?: string): Promise<InstallReport> => {
    if (text !== undefined) writeFileSync(join(dir, 'buildout.cfg'), text);
    return install({ configFile: 'buildout.cfg', cwd: dir });
  };
  const read = (path: string) => readFileSync(join(dir, path), 'utf8');
  const mode = (path: string) => statSync(join(dir, path)).mode & 0o777;
  const fails = async (text: string, pattern: RegExp) =>
    assert.rejects(run(text), (error: unknown) => error instanceof Error && pattern.test(error.message));

  beforeEach(() => {
    dir = writeTree({});
  });
  afterEach(() => removeTree(dir));

  describe('default entry (buildout substitution)', () => {
    const profile = (extra = '') => `[buildout]
parts = template

[section]
option = value

[template]
recipe = slapos.recipe.template
url = template.in
output = \${buildout:directory}/out/file.txt
${extra}`;

    it('substitutes ${section:option} and ${:option}, turns $${ into ${ and keeps other $$', async () => {
      writeFileSync(join(dir, 'template.in'), 'a=${section:option} b=${:recipe} c=$${HOME} d=$$PATH e=${:_buildout_section_name_}\n');
      const report = await run(profile());
      assert.deepEqual(report.installed, ['template']);
      assert.equal(read('out/file.txt'), 'a=value b=slapos.recipe.template c=${HOME} d=$$PATH e=template\n');
    });

    it('writes inline text as buildout substituted it, once, with the given mode', async () => {
      await run(`[buildout]
parts = script

[section]
option = value

[script]
recipe = slapos.recipe.template
inline =
  #!/bin/sh
  echo \${section:option} $\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
output = \${buildout:bin-directory}/script
mode = 0750
`);
      assert.equal(read('bin/script'), '#!/bin/sh\necho value ${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}');
      assert.equal(mode('bin/script'), 0o750);
    });

    it('installs first the parts the template refers to', async () => {
      writeFileSync(join(dir, 'template.in'), 'etc is ${dirs:etc}');
      const report = await run(profile('\n[dirs]\nrecipe = slapos.cookbook:mkdirectory\netc = ${buildout:directory}/etc\n'));
      assert.deepEqual(report.installed, ['dirs', 'template']);
      assert.equal(read('out/file.txt'), `etc is ${dir}/etc`);
      assert.ok(existsSync(join(dir, 'etc')));
    });

    it('refuses a missing option or an invalid reference, naming the part', async () => {
      writeFileSync(join(dir, 'template.in'), '${section:missing}');
      await fails(profile(), /\[template\].*\$\{section:missing\}.*no option missing/);
      writeFileSync(join(dir, 'template.in'), 'echo ${HOME}');
      await fails(profile(), /\[template\].*\$\{HOME\}.*literal/);
    });

    it('checks md5sum, and does not render a pinned template again on update', async () => {
      writeFileSync(join(dir, 'template.in'), '${section:option}');
      await fails(profile('md5sum = 00000000000000000000000000000000'), /MD5 checksum mismatch.*template\.in/);
      const md5 = createHash('md5').update('${section:option}').digest('hex');
      await run(profile(`md5sum = ${md5}`));
      assert.equal(read('out/file.txt'), 'value');
      writeFileSync(join(dir, 'out/file.txt'), 'altered');
      const report = await run();
      assert.deepEqual(report.updated, ['template']);
      assert.equal(read('out/file.txt'), 'altered');
    });

    it('renders an unpinned template again on update when what it says changed', async () => {
      writeFileSync(join(dir, 'template.in'), 'first ${section:option}');
      await run(profile());
      writeFileSync(join(dir, 'template.in'), 'second ${section:option}');
      const report = await run();
      assert.deepEqual(report.updated, ['template']);
      assert.equal(read('out/file.txt'), 'second value');
    });

    it('deletes the output when the part is removed', async () => {
      writeFileSync(join(dir, 'template.in'), 'x');
      await run(profile());
      await run('[buildout]\nparts =\n');
      assert.ok(!existsSync(join(dir, 'out/file.txt')));
    });
  });

  describe(':jinja2', () => {
    const jinja = (options: string, extra = '') => `[buildout]
parts = render

[section]
key = value
list = [1, 2]

[params]
foo = 1
bar = bar

[render]
recipe = slapos.recipe.template:jinja2
output = \${buildout:directory}/rendered
${options}
${extra}`;

    it('gives the context kinds: key, raw, json, jsonkey, section and import', async () => {
      writeFileSync(join(dir, 'foo.in'), [
        '{{ bar }}',
        'Knights who say "{{ knight }}"',
        '${this:is_literal}',
        '${foo:{{ bar }}}',
        'swallow: {{ json_module.dumps(("african", "european")) }}',
        'words: {{ words | join(", ") }} later: {{ later[1] }}',
        "parameters: {{ param_dict['bar'] }} {{ param_dict.foo }}",
        'Rendered with {{ recipe }}',
        '',
      ].join('\n'));
      await run(jinja(`url = foo.in
context =
  key bar section:key
  key recipe :recipe
  raw knight Ni !
  json words ["Peng", "Neee-wom"]
  jsonkey later section:list
  import json_module json
  section param_dict params`));
      assert.equal(read('rendered'), [
        'value',
        'Knights who say "Ni !"',
        '${this:is_literal}',
        '${foo:value}',
        'swallow: ["african", "european"]',
        'words: Peng, Neee-wom later: 2',
        'parameters: bar 1',
        'Rendered with slapos.recipe.template:jinja2',
      ].join('\n'));
    });

    it('follows Python where templates see it: truth, %, +, printing, methods, filters', async () => {
      const lines = [
        "{{ [] or 'empty' }} {% if not {} %}falsy{% endif %} {{ 'a' and 0 }}",
        "{{ '%s-%03d' % ('a', 7) }}{{ ' %(x)s' % {'x': 'y'} }} {{ [1] + [2] }} {{ '-' * 3 }}",
        "{{ None }} {{ True }} {{ ['a', 1] }} {{ {'k': None} }} {{ 'x' ~ None }} {{ nothing }}|",
        "{{ ' a  b '.split() }} {{ 'a,b'.split(',') }} {{ ' x '.strip() }} {{ 'aXa'.replace('a', 'b') }} {{ 'ab'.startswith(('x', 'a')) }} {{ '{}-{name}'.format(1, name=2) }}",
        "{{ {'b': 2, 'a': 1} | dictsort }} {{ {'b': '<', 'a': 1} | tojson }} {{ [3, 1, 2] | sort | list }} {{ ['b', 'a', 'b'] | unique | join('+') }}",
        "{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %} {{ len([1, 2]) }} {{ sorted(['b', 'a']) }} {{ (1, 2)[-1] }} {{ int('42') + 1 }} {{ str(1) }}",
        "{{ [{'n': 'a', 'on': True}, {'n': 'b', 'on': False}] | selectattr('on') | map(attribute='n') | list }}",
        '{% set key = "dynamic" %}{{ {key: 1} }} {{ 3 is none }} {{ none is none }}',
        "{{ dict({'a': 1}, **{'b': 2}) }} {{ (1,) }} {{ [1, 2,] }} {{ len('ab',) }} {{ 'abc'[1:] }} {{ [1, 2, 3][::-1] }}{% for (k, v) in {'x': 1}.items() %} {{ k }}={{ v }}{% endfor %}",
      ];
      await run(jinja(`inline =\n${lines.map((l) => `  ${l}`).join('\n')}`, ''));
      assert.equal(read('rendered'), [
        'empty falsy 0',
        "a-007 y [1, 2] ---",
        "None True ['a', 1] {'k': None} xNone |",
        "['a', 'b'] ['a', 'b'] x bXb True 1-2",
        "[['a', 1], ['b', 2]] {\"a\": 1, \"b\": \"\\u003c\"} [1, 2, 3] b+a",
        'xy 2 [\'a\', \'b\'] 2 43 1',
        "['a']",
        "{'dynamic': 1} False True",
        "{'a': 1, 'b': 2} [1] [1, 2] 2 bc [3, 2, 1] x=1",
      ].join('\n'));
    });

    it('has the do extension, dict and list methods', async () => {
      await run(jinja(`extensions = jinja2.ext.do
inline =
  {% set parts = [] %}{% set d = {} %}
  {%- do parts.append('a') %}{% do parts.extend(['b', 'c']) %}{% do d.__setitem__('k', 'v') %}{% do d.update({'x': 1}) %}
  {{- parts | join(' ') }} {{ d.get('k') }} {{ d.get('missing') }} {{ d.setdefault('z', 0) }} {{ d | length }}`));
      assert.equal(read('rendered'), 'a b c v None 0 3');
    });

    it('refuses {% do %} without the extension and unknown extensions', async () => {
      await fails(jinja('inline = {% do x %}'), /\[render\] cannot render the inline template[^]*unknown block tag: do/);
      await fails(jinja('extensions = jinja2.ext.i18n\ninline = x'), /\[render\] extensions: jinja2\.ext\.i18n is not available/);
    });

    it('imports templates named by import-list (file and rawfile)', async () => {
      writeFileSync(join(dir, 'lib.in'), "{% macro hello(who) %}hello {{ who }}{% endmacro %}\n");
      writeFileSync(join(dir, 'other.in'), '{% macro bye() %}bye {{ name }}{% endmacro %}\n');
      writeFileSync(join(dir, 'main.in'), "{% import 'lib' as lib %}{% from 'other' import bye with context %}{{ lib.hello('you') }}, {{ bye() }}\n");
      await run(jinja(`url = main.in
context = raw name Arthur
import-list =
  file lib files:lib
  rawfile other ${dir}/other.in`, `[files]\nlib = \${buildout:directory}/lib.in\n`));
      assert.equal(read('rendered'), 'hello you, bye Arthur');
    });

    it('takes the legacy template = inline: and rendered options, and mode', async () => {
      await run(`[buildout]
parts = legacy

[legacy]
recipe = slapos.recipe.template:jinja2
template = inline:#!/bin/sh
  echo {{ 1 + 1 }}
rendered = \${buildout:directory}/legacy.sh
mode = 755
`);
      assert.equal(read('legacy.sh'), '#!/bin/sh\necho 2');
      assert.equal(mode('legacy.sh'), 0o755);
    });

    it('renders once: an existing output named by once is kept, and kept on uninstall', async () => {
      const options = 'inline = {{ 6 * 7 }}\nonce = ${:output}';
      await run(jinja(options));
      assert.equal(read('rendered'), '42');
      writeFileSync(join(dir, 'rendered'), 'edited');
      await run(jinja(options.replace('6 * 7', '1')));
      assert.equal(read('rendered'), 'edited');
      await run('[buildout]\nparts =\n');
      assert.equal(read('rendered'), 'edited');
    });

    it('renders again on update when the template file changed, and reports render errors with the template', async () => {
      writeFileSync(join(dir, 'foo.in'), 'one');
      await run(jinja('url = foo.in'));
      writeFileSync(join(dir, 'foo.in'), 'two');
      assert.deepEqual((await run()).updated, ['render']);
      assert.equal(read('rendered'), 'two');
      writeFileSync(join(dir, 'foo.in'), '{% if %}');
      await assert.rejects(run(jinja('url = foo.in\nmd5sum =')), (error: unknown) =>
        error instanceof InstallError && /\[render\] cannot render foo\.in/.test(error.message));
    });

    it("gives slapconfiguration's configuration and addresses as the objects SlapOS gives", async () => {
      writeFileSync(join(dir, 'params.json'), JSON.stringify({ name: 'World', list: [1, 2] }));
      await run(jinja(`context =
  key slapparameter_dict slap-configuration:configuration
  key ipv4_set slap-configuration:ipv4
  key name slap-configuration:configuration.name
inline = {{ slapparameter_dict.get('name') }} {{ slapparameter_dict['list'] | length }} {{ (ipv4_set | list)[0] }} {{ name }}`,
      '[slap-configuration]\nrecipe = slapos.cookbook:slapconfiguration\nparameters-file = params.json\n'));
      assert.equal(read('rendered'), 'World 2 127.0.0.1 World');
    });

    it('refuses a context key that does not exist while the configuration is evaluated', async () => {
      await fails(jinja('inline = x\ncontext = key x section:nope'), /\[render\] context section:nope: \[section\] has no option nope/);
    });
  });
});
