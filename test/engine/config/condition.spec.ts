import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { ConditionError, evaluateCondition, type ConditionEnvironment } from '../../../engine/config/condition.js';
import { removeTree, writeTree } from '../../helpers/files.js';

/** An arm64 board, deliberately not the machine running the tests. */
const board: ConditionEnvironment = {
  pythonVersion: [3, 11, 7], machine: 'aarch64', release: '5.10.0-28-arm64', kernelVersion: '#1 SMP Debian', bits: 64, littleEndian: true,
};

const cases: readonly (readonly [string, boolean])[] = [
  ['python3', true],
  ['python2 or python27', false],
  ['python311 and not python310', true],
  ['cpython and not (pypy or jython or ironpython)', true],
  ['linux and posix and not (windows or macosx or cygwin or solaris)', true],
  ['bits64 and not bits32 and little_endian', true],
  ["python3 and ''", false],
  ["'' or 'x'", true],
  ['[] or ()', false],
  ['python2, python3', false],
  ['platform.machine() == "aarch64"', true],
  ["linux and platform.machine() == 'x86_64'", false],
  ["platform.machine() in ('x86_64', 'i686')", false],
  ["platform.release().startswith('5.10') and platform.system() == 'Linux'", true],
  ["platform.architecture()[0] == '64bit'", true],
  ['sys.version_info < (3,8)', false],
  ['sys.version_info >= (3, 11) and sys.version_info[:2] == (3, 11)', true],
  ['sys.version_info.major == 3 and sys.version_info.minor > 9', true],
  ["sys.platform == 'linux' and os.name == 'posix'", true],
  ['[int(q) for q in platform.release().split(".")[:2]] >= [5, 4]', true],
  ['[int(q) for q in platform.release().split(".")[:2]] < [4,14]', false],
  ['[x for x in (1, 2, 3) if x > 1] == [2, 3]', true],
  ['1 < 2 < 3', true],
  ['3 > 2 > 2', false],
  ['(1, 2) < (1, 2, 0)', true],
  ['True == 1 and 2.0 == 2', true],
  ['"\\x23" == chr(35)', true],
  ["'a' 'b' == 'ab'", true],
  ['len("abc") == 3 and max(1, 5, 3) == 5 and min([4, 2]) == 2', true],
  ['-1 + 2 * 3 == 5 and 7 % 3 == 1', true],
  ['None is None and 1 is not None', true],
  ['any([0, 1]) and not all([0, 1])', true],
  ['"b" in "abc" and 2 not in [1, 3]', true],
  // PEP 508 markers are tried first: versions compare as versions, not strings
  ['python_version >= "3.0"', true],
  ['python_version > "3.9"', true],
  ['python_full_version == "3.11.7" and sys_platform == "linux"', true],
  ['platform_machine == "aarch64" and os_name == "posix"', true],
  ['implementation_name == "cpython" or platform_system == "Windows"', true],
  ['"arm" in platform_release', true],
  ['python_version ~= "3.9"', true],
  ['python_full_version == "3.11.*" and python_version != "3.10.*"', true],
];

describe('engine/config conditions', () => {
  for (const [expression, expected] of cases) {
    it(`${expression} is ${expected}`, () => {
      assert.equal(evaluateCondition(expression, board), expected);
    });
  }

  it('replaces the \\x23 and \\x3b escapes before evaluating', () => {
    assert.equal(evaluateCondition('"\\x23\\x3b" == "#;"', board), true);
  });

  it('reads real files: os.path, os.access and open().read()', () => {
    const dir = writeTree({ 'model': 'Olimex A64-OLinuXino\n', 'sub/x': '' });
    try {
      const model = join(dir, 'model');
      assert.equal(evaluateCondition(`os.path.isdir('${dir}/sub') and os.access('${model}', os.R_OK) and 'OLinuXino' in open('${model}').read()`, board), true);
      assert.equal(evaluateCondition(`os.path.isfile('${dir}/sub') or os.path.exists('${dir}/none')`, board), false);
    } finally {
      removeTree(dir);
    }
  });

  it('reads /etc/os-release through platform.freedesktop_os_release()', () => {
    assert.equal(evaluateCondition("sys.version_info < (3, 10) or len(platform.freedesktop_os_release()['ID']) > 0", board), true);
  });

  const errors: readonly (readonly [string, RegExp, number?])[] = [
    ['iron', /name 'iron' is not defined/, 1],
    ['sys_version', /name 'sys_version' is not defined/, 1],
    ['python3 and (', /invalid syntax/, 14],
    ['python3 python2', /invalid syntax/, 9],
    ["sys.modules", /has no attribute 'modules'/, 5],
    ["(1, 2) < [1, 2]", /'<' not supported between instances of 'tuple' and 'list'/],
    ["'a' < 1", /not supported/],
    ['"unterminated', /unterminated string/, 1],
    ['open("/nonexistent/file").read()', /cannot read/],
    ['[1][5]', /index out of range/],
    ['python3 @ 1', /invalid character/, 9],
    ['python_version < "abc"', /not versions/],
  ];
  for (const [expression, message, column] of errors) {
    it(`refuses ${expression} with a ConditionError`, () => {
      assert.throws(() => evaluateCondition(expression, board), (error: unknown) => {
        assert.ok(error instanceof ConditionError);
        assert.equal(error.name, 'ConditionError');
        assert.match(error.message, message);
        if (column !== undefined) assert.equal(error.column, column);
        return true;
      });
    });
  }

  it('refuses absurd inputs instead of hanging or overflowing', () => {
    assert.throws(() => evaluateCondition('('.repeat(5000) + '1' + ')'.repeat(5000), board), ConditionError);
    assert.throws(() => evaluateCondition('not '.repeat(2000) + 'python3', board), ConditionError);
    assert.throws(() => evaluateCondition("'x' * 10000000", board), ConditionError);
    assert.throws(() => evaluateCondition('-'.repeat(2000) + '1', board), ConditionError);
    assert.throws(() => evaluateCondition('x'.repeat(20000), board), ConditionError);
  });
});
