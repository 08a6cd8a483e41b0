#!/usr/bin/env python3
"""Reference resolver: upstream zc.buildout patched to behave like SlapOS's fork.

Usage: ZC_BUILDOUT_SRC=/path/to/buildout/src \
           python3 buildout_resolve.py -c FILE [section:option=value ...]

Prints the resolve contract of design.md §3:
  {"sections": {name: {option: value}}, "errors": {name: message}}
A fatal error (parse error, missing or recursive extends, bad condition,
failing [buildout] or versions section) goes to stderr with exit status 1.
Always runs as with -U (no user defaults). Nothing is installed, no recipe is
loaded, nothing is written in the profile's folder.
"""
import copy
import glob
import json
import os
import re
import sys

BASE_LOCATION = '_profile_base_location_'


def import_buildout():
    """Import zc.buildout.buildout from the checkout named by ZC_BUILDOUT_SRC."""
    src = os.environ.get('ZC_BUILDOUT_SRC')
    if not src or not os.path.isdir(os.path.join(src, 'zc', 'buildout')):
        sys.exit('ZC_BUILDOUT_SRC must name a zc.buildout source tree (.../src)')
    src = os.path.abspath(src)
    # At import, easy_install looks the zc.buildout distribution up with
    # pkg_resources; offline it can only find it through metadata on sys.path.
    if not glob.glob(os.path.join(src, 'zc.buildout*.*-info')):
        version = '0'
        setup_py = os.path.join(src, '..', 'setup.py')
        if os.path.exists(setup_py):
            with open(setup_py) as f:
                m = re.search(r'^version = "([^"]+)"', f.read(), re.M)
                version = m.group(1) if m else version
        info = os.path.join(src, 'zc.buildout-%s.dist-info' % version)
        os.makedirs(info, exist_ok=True)
        with open(os.path.join(info, 'METADATA'), 'w') as f:
            f.write('Metadata-Version: 2.1\nName: zc.buildout\n'
                    'Version: %s\n' % version)
    sys.path.insert(0, src)
    import zc.buildout.buildout
    return zc.buildout.buildout


bo = import_buildout()
UserError = bo.zc.buildout.UserError


# --- extends algorithm (C): DFS postorder, each file read once --------------

def read_file(path, base):
    """Parse one file; apply the fork's per-file _profile_base_location_."""
    with open(path) as fp:
        data = bo.zc.buildout.configparser.parse(fp, path, bo._default_globals)
    extends = data.get('buildout', {}).pop('extends', '')
    if 'extended-by' in data.get('buildout', {}):
        raise UserError('No-longer supported "extended-by" option found in %s.'
                        % path)
    token = '${:%s}' % BASE_LOCATION
    for name, section in data.items():
        fixed = {}
        for key, value in section.items():
            value = value.replace(token, base)
            # 'x+=' (no space) parses as 'x+'; head's _update only knows
            # 'x +' for sections new in the merge (it strips two characters).
            if key[-1] in '+-' and key[-2:-1] != ' ':
                key = key[:-1] + ' ' + key[-1]
                if key in fixed:
                    value = fixed[key] + '\n' + value
            fixed[key] = value
        fixed[BASE_LOCATION] = base
        data[name] = fixed
    return bo._annotate(data, path), extends.split()


def linearize(roots):
    """Return the parsed dicts of roots and everything they extend, in
    depth-first postorder (children in extends order), each file once."""
    done, stack, out = set(), [], []

    def visit(path):
        if bo._isurl(path):
            raise UserError("Couldn't download %s: no network here" % path)
        key = os.path.normpath(os.path.abspath(path))
        if key in stack:
            raise UserError('Recursive file include', stack, path)
        if key in done:
            return
        base = os.path.dirname(path)  # as joined, not normalized
        stack.append(key)
        data, extends = read_file(path, base)
        for child in extends:
            if not bo._isurl(child):
                child = os.path.join(base, os.path.expanduser(child))
            visit(child)
        stack.pop()
        done.add(key)
        out.append(data)

    for path in roots:
        visit(path)
    return out


def fold(acc, new):
    """upstream _update(acc, new), copying only the sections new touches:
    deep-copying the whole accumulator per file is what makes it slow."""
    touched = {name: acc[name] for name in new if name in acc}
    acc.update(bo._update(touched, new))


def copy_section_key(self, memo):
    # _update/_update_section deep-copy every value with its whole history;
    # history items are never mutated, so copying the list is enough.
    clone = bo.SectionKey.__new__(bo.SectionKey)
    clone.value, clone.history = self.value, list(self.history)
    return clone


bo.SectionKey.__deepcopy__ = copy_section_key


def patched_open(base, filename, seen, download_options, override,
                 downloaded, user_defaults):
    """Replaces upstream _open. Called first for the root file: reads it and
    the command-line extends in one walk, folded over the defaults (the first
    dict). Later calls (command-line extends files) are already read."""
    if patched_open.done:
        return {}, {}
    patched_open.done = True
    roots = [os.path.join(base, filename)]
    cl_extends = override.get('extends')
    for path in (cl_extends.value.split() if cl_extends else ()):
        roots.append(path if os.path.isabs(path)
                     else os.path.join(os.getcwd(), path))
    acc = {'buildout': copy.deepcopy(download_options)}  # defaults + directory
    for data in linearize(roots):
        fold(acc, data)
    return acc, {}


patched_open.done = False
bo._open = patched_open


# --- $${ escape, computed values final --------------------------------------

def substitute(self, value, seen):
    """Upstream splits on '$$' and re-joins with '$$'; the fork turns '$${'
    into a literal '${' (other '$$' stay)."""
    pieces = value.split('$$')
    out = [self._sub(pieces[0], seen)]
    for piece in pieces[1:]:
        out.append('$' if piece.startswith('{') else '$$')
        out.append(self._sub(piece, seen))
    return ''.join(out)


def dosub(self, option, value):
    # Store in _data, not _cooked: upstream's get re-substitutes cooked
    # values containing '${', which would expand an unescaped '$${'.
    self._data[option] = substitute(self, value, [(self.name, option)])


def get(self, option, default=None, seen=None):
    if option in self._data:
        return self._data[option]
    value = self._raw.get(option)
    if value is None:
        # 3.0.1 has no eggs-directory-version: head's /v5 append sees ''.
        if self.name == 'buildout' and option == 'eggs-directory-version':
            return ''
        return default
    if '${' in value:
        key = (self.name, option)
        if seen is None:
            seen = []
        elif key in seen:
            raise UserError('Circular reference in substitutions.\n')
        seen.append(key)
        value = substitute(self, value, seen)
        seen.pop()
    self._data[option] = value
    return value


def initialize(self):
    """No recipe is loaded: a part only gets its default location."""
    if 'location' not in self.keys():
        self['location'] = os.path.join(
            self.buildout['buildout']['parts-directory'], self.name)


bo.Options._dosub = dosub
bo.Options.get = get
bo.Options.initialize = initialize
del bo._buildout_default_options['eggs-directory-version']

# Buildout() creates the eggs/cache directories and chdirs to the profile's
# folder; neither is wanted for a read-only resolve.
os.makedirs = os.mkdir = os.chdir = lambda *args, **kw: None
bo.logging.getLogger('zc.buildout').disabled = True  # 'Creating directory'


# --- evaluation --------------------------------------------------------------

def resolve(config_file, assignments):
    buildout = bo.Buildout(config_file, assignments, use_user_defaults=False)
    versions = buildout['buildout'].get('versions')
    ignored = {'buildout': {'executable', 'python'}, versions: {'zc.buildout'}}
    sections, errors = {}, {}
    for name in sorted(buildout._raw):
        try:
            options = buildout[name]
            values = {k: options.get(k) for k in sorted(options.keys())}
        except UserError as e:
            errors[name] = str(e)
            continue
        sections[name] = {
            k: v for k, v in values.items()
            if not k.startswith('__buildout')
            and k != '_buildout_section_name_'
            and k not in ignored.get(name, ())}
    return {'sections': sections, 'errors': errors}


def parse_args(argv):
    config_file, assignments = None, []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == '-c' and args:
            config_file = args.pop(0)
        elif arg == '-U':
            pass  # always on
        elif '=' in arg and not arg.startswith('-'):
            # As upstream's main: [section:]option=value, parts stripped.
            option, value = arg.split('=', 1)
            option = option.split(':')
            if len(option) == 1:
                option = ['buildout'] + option
            if len(option) != 2:
                sys.exit('Invalid option: %s' % arg)
            assignments.append((option[0].strip(), option[1].strip(),
                                value.strip()))
        else:
            sys.exit(__doc__)
    if config_file is None:
        sys.exit(__doc__)
    return config_file, assignments


def main():
    config_file, assignments = parse_args(sys.argv[1:])
    stdout, sys.stdout = sys.stdout, sys.stderr  # buildout logs to stdout
    try:
        result = resolve(config_file, assignments)
    except Exception as e:  # fatal: no JSON
        sys.stderr.write('Error: %s\n' % (
            e if isinstance(e, UserError) else '%s: %s' % (type(e).__name__, e)))
        sys.exit(1)
    finally:
        sys.stdout = stdout
    json.dump(result, sys.stdout, sort_keys=True, indent=1, ensure_ascii=False)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
