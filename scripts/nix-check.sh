#!/usr/bin/env bash
# Everything Nix-related that these machines can check (nixpkgs cannot be fetched here, so nothing
# is built with Nix; see docs/nixos.md):
#   1. every .nix file parses, is formatted (nixpkgs-fmt) and has no dead code (deadnix), and
#      flake.lock pins nixpkgs to a full revision with its NAR hash;
#   2. ../shared/nix-eval: nix/package.nix's postInstall under stdenv's substitution functions;
#      every scenario in nix/eval-scenarios/ and docs/nixos.md's example evaluated with the
#      real nixpkgs lib against the expectations in their headers; generateUnits (no collision);
#   3. the build-time check of every scenario's config, run as the build would run its script
#      (the scenario's files in place of their store paths; `# expect-check-failure: TEXT` in a
#      scenario's header means it must fail saying TEXT), and `paratime-node config check` on
#      every rendered config.yml (target/nix-eval/settings.list); the docs/nixos.md example's config
#      equals nix/tests/example-config.yml (the fixture tests/nix_fixture.rs checks);
#   4. the generated /etc/systemd/system of every scenario: the unit files equal systemd/ (and
#      systemd/make-templates.sh's output) with the package's two substitutions, read at check
#      time; the drop-ins equal nix/eval-scenarios/expected/ (text, store hashes masked); each
#      unit's offline exposure (systemd-analyze security --offline=true) stays within the shipped
#      unit's figure; the module's users and tmpfiles rules cover systemd/sysusers.d and
#      systemd/tmpfiles.d.
# Where a part cannot run (no ../shared/nix-eval, no paratime-node binary), it prints a SKIPPED
# line; with CI=true that is a failure.
#
# usage: scripts/nix-check.sh [--update]   (--update rewrites nix/eval-scenarios/expected/)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
update=0
[ "${1:-}" = --update ] && update=1

failures=0 skipped=0
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
ok() { echo "ok    $*"; }
skip() {
  echo "SKIPPED  $*"
  skipped=$((skipped + 1))
}

for t in nix-instantiate nixpkgs-fmt deadnix python3 systemd-analyze jq; do
  command -v "$t" >/dev/null || {
    echo "nix-check: $t not found (scripts/test.sh installs nix-bin, nixpkgs-fmt and deadnix; jq and systemd-analyze come with Debian's jq and systemd)" >&2
    exit 1
  }
done

# 1. Every file parses, is formatted, and has no dead code; the lock pins nixpkgs.
mapfile -t nix_files < <(git ls-files --cached --others --exclude-standard '*.nix')
for f in "${nix_files[@]}"; do nix-instantiate --parse "$f" >/dev/null; done
nixpkgs-fmt --check "${nix_files[@]}"
deadnix --fail "${nix_files[@]}"
python3 - <<'PY'
import json, re
lock = json.load(open("flake.lock"))
n = lock["nodes"][lock["nodes"]["root"]["inputs"]["nixpkgs"]]["locked"]
assert re.fullmatch(r"[0-9a-f]{40}", n["rev"]), "flake.lock: nixpkgs is not pinned to a full revision"
assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", n["narHash"]), "flake.lock: nixpkgs has no narHash"
# nix/package.nix's source fileset holds every workspace member (the build sees nothing else).
import tomllib
members = tomllib.load(open("Cargo.toml", "rb"))["workspace"]["members"]
pkg = open("nix/package.nix").read()
fileset = re.search(r"fileset = lib\.fileset\.unions \[(.*?)\];", pkg, re.S).group(1).split()
covered = [f[len("../"):] for f in fileset if f.startswith("../")]
for m in members:
    need = ["src"] if m == "." else [m]
    for d in need:
        assert any(d == c or d.startswith(c + "/") for c in covered), f"nix/package.nix: the workspace member {m} ({d}) is not in the source fileset {covered}"
PY
ok "parse, nixpkgs-fmt, deadnix (${#nix_files[@]} files), flake.lock pin, package fileset covers the workspace"

# 2. The evaluation tool, from ../shared beside the repository (the same layout in CI).
tool="$root/../shared/nix-eval"
out="$root/target/nix-eval"
if [ ! -f "$tool/check.sh" ]; then
  skip "nix-eval: $tool/check.sh not found: the NixOS module, the package's postInstall and the units are NOT checked"
  if [ "${CI:-}" = true ]; then
    echo "nix-check: FAILED (CI=true and a check could not run)"
    exit 1
  fi
  echo "nix-check: passed, with $skipped part(s) SKIPPED"
  exit 0
fi

# docs/nixos.md's example, as written: its `paratime.nix` block, with the flake's outputs as the
# `paratime-node` module argument and the scenario files beside it.
readme="$out/readme-example"
rm -rf "$readme" && mkdir -p "$readme"
python3 - "$readme/paratime.nix" <<'PY'
import re, sys
blocks = re.findall(r"```nix\n(.*?)```", open("docs/nixos.md").read(), re.S)
mine = [b for b in blocks if b.startswith("# paratime.nix")]
assert len(mine) == 1, "docs/nixos.md: expected one ```nix block starting with '# paratime.nix'"
open(sys.argv[1], "w").write(mine[0])
PY
cp nix/eval-scenarios/files/genesis.json nix/eval-scenarios/files/entity.json "$readme/"
cat >"$readme/readme-example.nix" <<'EOF'
# docs/nixos.md's example (paratime.nix beside it), with the flake's module.
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ./paratime.nix ];
  _module.args.paratime-node = nixEval.flake;
}
EOF
# JSON2YAML/NIX_EVAL_REQUIRE_YAML: the settings must be rendered for the checks below.
if NIX_EVAL_SRC_DIRS="systemd apparmor dist" NIX_EVAL_REQUIRE_YAML=1 bash "$tool/check.sh" --out "$out" nix/eval-scenarios "$readme/readme-example.nix"; then
  ok "nix-eval (results in $out)"
else
  fail "nix-eval: see the lines above ($out/summary.txt)"
fi

# 3. The build-time checks and config check, with the binary the tests use.
bin=""
# The debug build first: scripts/test.sh builds it just before, and a release build left from
# earlier work may be stale.
for b in target/debug/paratime-node target/release/paratime-node; do
  if [ -x "$b" ] && [ -x "$(dirname "$b")/paratime-kvstore" ]; then
    bin="$root/$b"
    break
  fi
done
if [ -z "$bin" ]; then
  skip "config checks: no target/{release,debug}/paratime-node with paratime-kvstore beside it (cargo build --workspace --bins)"
else
  scratch="$out/config-check"
  rm -rf "$scratch" && mkdir -p "$scratch/bin"
  ln -s "$bin" "$scratch/bin/paratime-node"
  # yaml2json (remarshal, as in the configFile check's build): the host's, else nix-eval's.
  y2j="$(command -v yaml2json || true)"
  for d in "${NIX_EVAL_CACHE:-}" "${XDG_CACHE_HOME:-}/nix-eval" /var/cache/nix-eval "$HOME/.cache/nix-eval"; do
    [ -z "$y2j" ] || break
    [ -d "$d" ] || continue
    y2j="$(find "$d" -name yaml2json -path '*remarshal*' -type f 2>/dev/null | head -1 || true)"
  done
  if [ -n "$y2j" ]; then ln -s "$y2j" "$scratch/bin/yaml2json"; fi
  "$bin" bundle build --executable "$(dirname "$bin")/paratime-kvstore" --name kvstore \
    --runtime-id 0000000000000000000000000000000000000000000000000000000000000001 \
    --version 0.1.0 --output "$scratch/kvstore.orc" >/dev/null
  # Store paths of the scenarios' path literals, as Nix computes them (no store is written).
  mapfile -t files < <(find "$root/nix/eval-scenarios/files" "$readme" -maxdepth 1 -type f ! -name '*.nix' | sort)
  expr="[ $(printf '"%s" ' "${files[@]}") ]"
  nix-instantiate --readonly-mode --eval --strict --json \
    --expr "map (f: { file = f; store = \"\${/. + f}\"; }) $expr" >"$scratch/files.json"
  if PATH="$scratch/bin:$PATH" python3 - "$out" "$scratch" "$readme" "$root/nix/tests/example-config.yml" <<'PY'; then
import glob, json, os, re, subprocess, sys, tempfile
out, scratch, readme, fixture = sys.argv[1:5]
mapping = {e["store"]: e["file"] for e in json.load(open(os.path.join(scratch, "files.json")))}
bundle = os.path.join(scratch, "kvstore.orc")
STORE = re.compile(r"/nix/store/[0-9a-z]{32}-[^\s'\"]*")
bad = 0

def local(text, extra):
    """Replace every store path by its local file; returns (text, unmapped paths)."""
    m = dict(mapping, **extra)
    unmapped = []
    def sub(match):
        p = match.group(0)
        if p in m:
            return m[p]
        if p.endswith(".orc"):
            return bundle
        unmapped.append(p)
        return p
    return STORE.sub(sub, text), unmapped

def header(scenario, key):
    try:
        lines = open(scenario).read().splitlines()
    except OSError:
        return []
    return [l.split(":", 1)[1].strip() for l in lines if l.startswith("# " + key + ":")]

def run(script, cwd):
    env = dict(os.environ, out=os.path.join(cwd, "out"))
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True)

built = []  # outputs of derivations the scenarios would build (not available here)
for rj in sorted(glob.glob(os.path.join(out, "scenarios", "*", "result.json"))):
    name = os.path.basename(os.path.dirname(rj))
    r = json.load(open(rj))
    if not r.get("evaluated") or r.get("failedAssertions"):
        continue
    built += [d["path"] for d in r.get("derivations", []) if not d["name"].endswith((".yml", ".orc"))]
    # The settings files, with their own store paths made local too.
    yamls = {}
    for s in r.get("settings", []):
        if s.get("file"):
            text, _ = local(open(s["file"]).read(), {})
            copy = os.path.join(scratch, name + "-" + os.path.basename(s["file"]))
            open(copy, "w").write(text)
            yamls[s["path"]] = copy
    expect = header(r["scenario"], "expect-check-failure")
    checks = [d for d in r.get("derivations", []) if d["name"].endswith("-config-checked.yml")]
    for d in checks:
        script, unmapped = local(d["script"], yamls)
        if unmapped:
            print(f"FAIL  build-time check {name}/{d['name']}: no local file for {unmapped}")
            bad += 1
            continue
        with tempfile.TemporaryDirectory(dir=scratch) as cwd:
            p = run(script, cwd)
        said = (p.stdout + p.stderr).strip()
        if expect:
            if p.returncode != 0 and all(e in said for e in expect):
                print(f"ok    build-time check {name}/{d['name']}: failed as expected: {said.splitlines()[-1]}")
            else:
                print(f"FAIL  build-time check {name}/{d['name']}: expected a failure saying {expect}, got exit {p.returncode}: {said}")
                bad += 1
        elif p.returncode == 0:
            skipped = [l for l in said.splitlines() if "not checked here" in l]
            print(f"ok    build-time check {name}/{d['name']}" + (f" ({len(skipped)} file(s) on the host skipped, as it says)" if skipped else ""))
        else:
            print(f"FAIL  build-time check {name}/{d['name']}: exit {p.returncode}: {said}")
            bad += 1
    if expect and not checks:
        print(f"FAIL  build-time check {name}: expected a failure, but the scenario has no config check")
        bad += 1
    # `# expect-setting: FILE KEY = JSON`: the settings file FILE (e.g. paratime-node.yml) holds
    # KEY (dotted) with exactly that value; `= absent` when it must not hold KEY.
    for e in header(r["scenario"], "expect-setting"):
        m = re.fullmatch(r"(\S+) (\S+) = (.*)", e)
        if not m:
            print(f"FAIL  setting {name}: unreadable expectation '{e}'")
            bad += 1
            continue
        fname, key, want = m.groups()
        docs = [x for x in r.get("settings", []) if os.path.basename(x.get("file") or x.get("path", "")) == fname]
        if len(docs) != 1:
            print(f"FAIL  setting {name}: {len(docs)} settings files named {fname}")
            bad += 1
            continue
        got = docs[0]["json"]
        for part in key.split("."):
            got = got.get(part) if isinstance(got, dict) else None
        ok_ = (got is None) if want == "absent" else (got == json.loads(want))
        print(("ok    " if ok_ else "FAIL  ") + f"setting {name}/{fname}: {key} = {json.dumps(got)} (expected {want})")
        bad += 0 if ok_ else 1

# config check on every rendered config.yml, with the scenario's files. A config naming files
# on the host (not in the store) is checked through its check-input copy (stand-ins), as the
# build does.
for f in open(os.path.join(out, "settings.list")).read().split():
    text, unmapped = local(open(f).read(), {})
    label = os.path.relpath(f, out)
    outputs = [u for u in unmapped if any(u.startswith(b + "/") for b in built)]
    if outputs and len(outputs) == len(unmapped):
        print(f"note  config check {label}: not run, it names files a derivation makes at build time: {outputs}")
        continue
    if unmapped:
        print(f"FAIL  config check {label}: no local file for {unmapped}")
        bad += 1
        continue
    host_files = [l for l in text.splitlines() if re.search(r":\s+/(etc|var|srv|run)/\S+\.(json|orc)\s*$", l) or re.search(r"^\s*-\s+/(etc|var|srv|run)/\S+\.orc\s*$", l)]
    if host_files:
        print(f"ok    config check {label}: names files on the host ({len(host_files)}); checked through its check-input copy")
        continue
    with tempfile.TemporaryDirectory(dir=scratch) as cwd:
        stand_ins = re.findall(r"unchecked-[a-z0-9-]+\.(?:json|orc)", text)
        for s in stand_ins:
            with open(os.path.join(cwd, s), "w") as h:
                # As the module's stand-ins: config check reads an entity's `id`.
                if s == "unchecked-entity.json":
                    h.write('{"id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}')
                else:
                    h.write("{}" if s.endswith(".json") else "")
        cfg = os.path.join(cwd, "config.yml")
        open(cfg, "w").write(text)
        # As the module: the runtime stand-ins are empty, so config check does not open them.
        unchecked = [a for s in stand_ins if s.endswith(".orc") for a in ("--unchecked-file", s)]
        p = subprocess.run(["paratime-node", "config", "check", "--config", cfg] + unchecked,
                           cwd=cwd, capture_output=True, text=True)
    if p.returncode == 0:
        print(f"ok    config check {label}")
    else:
        print(f"FAIL  config check {label}: {(p.stdout + p.stderr).strip()}")
        bad += 1

# The docs/nixos.md example's config is the fixture tests/nix_fixture.rs feeds to config check.
got = open(os.path.join(out, "scenarios", "readme-example", "settings", "paratime-node.yml")).read()
got = re.sub(r"/nix/store/[0-9a-z]{32}-", "/nix/store/" + "0" * 32 + "-", got)
want = "".join(l for l in open(fixture).readlines() if not l.startswith("#"))
if got == want:
    print("ok    docs/nixos.md example's config.yml equals nix/tests/example-config.yml")
else:
    print("FAIL  docs/nixos.md example's config.yml differs from nix/tests/example-config.yml:\n" + got)
    bad += 1
sys.exit(1 if bad else 0)
PY
    ok "build-time checks and config check ($bin)"
  else
    fail "build-time checks or config check: see the lines above"
  fi
fi

# 4. The generated units against the shipped files, read now.
shipped="$out/shipped-units"
rm -rf "$shipped" && mkdir -p "$shipped"
cp systemd/*.service systemd/*.socket "$shipped/"
sh systemd/make-templates.sh systemd "$shipped"
if python3 - "$out" "$shipped" "$root/nix/eval-scenarios/expected" "$update" <<'PY'; then
import glob, json, os, re, shutil, subprocess, sys, tempfile
out, shipped, expected, update = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
pkg = os.path.realpath(os.path.join(out, "postinstall", "out"))
HASH = re.compile(r"/nix/store/[0-9a-z]{32}-")
bad = 0

def say(ok, msg):
    global bad
    print(("ok    " if ok else "FAIL  ") + msg)
    bad += 0 if ok else 1

def exposure(args):
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager"] + args,
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
    return (float(m.group(1)) if m else None), p

figures = {}
for u in sorted(os.listdir(shipped)):
    if u.endswith(".service") and "@" not in u:
        figures[u], p = exposure([os.path.join(shipped, u)])
        if figures[u] is None:
            say(False, f"exposure of shipped {u}: {p.stdout}{p.stderr}")
print("      shipped exposure: " + ", ".join(f"{u} {f}" for u, f in figures.items()))

if update and os.path.isdir(expected):
    shutil.rmtree(expected)
for rj in sorted(glob.glob(os.path.join(out, "scenarios", "*", "result.json"))):
    name = os.path.basename(os.path.dirname(rj))
    system = os.path.join(os.path.dirname(rj), "system")
    r = json.load(open(rj))
    if not r.get("evaluated") or r.get("failedAssertions") or not os.path.isdir(system):
        continue
    # Unit files: the package's, i.e. systemd/ with $out/bin/paratime-node and bubblewrap filled in.
    dropins, problems = {}, []
    for dirpath, _, files in os.walk(system):
        for f in files:
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, system)
            if rel.endswith(".d/overrides.conf"):
                dropins[rel] = HASH.sub("/nix/store/HASH-", open(path).read())
                continue
            if "/" in rel or not rel.startswith("paratime-node"):
                continue
            if not os.path.realpath(path).startswith(pkg + "/"):
                problems.append(f"{rel} is not the package's")
                continue
            text = open(path).read().replace(pkg + "/bin/paratime-node", "/usr/bin/paratime-node")
            text = re.sub(r"/nix/store/[0-9a-z]{32}-bubblewrap[^/\s]*/bin/bwrap", "/usr/bin/bwrap", text)
            want = os.path.join(shipped, rel)
            if not os.path.exists(want) or open(want).read() != text:
                problems.append(f"{rel} differs from systemd/ (with the package's substitutions)")
    missing = sorted(set(os.listdir(shipped)) - set(os.listdir(system)))
    if missing:
        problems.append(f"missing {missing}")
    say(not problems, f"units {name}: equal to systemd/ and make-templates.sh's output" + (f": {problems}" if problems else ""))
    # Store path names Nix would refuse (the stubs accept any name), e.g. a unit instance's `@`.
    names = set(re.findall(r"/nix/store/[0-9a-z]{32}-([^/\s\"'\\]+)", open(rj).read() + "".join(dropins.values())))
    illegal = sorted(n for n in names if not re.fullmatch(r"[A-Za-z0-9+._?=-]+", n))
    say(not illegal, f"store names {name}: legal for Nix" + (f"; illegal: {illegal}" if illegal else ""))
    # Drop-ins: the golden text in nix/eval-scenarios/expected/NAME/.
    gold = os.path.join(expected, name)
    if update:
        for rel, text in dropins.items():
            os.makedirs(os.path.dirname(os.path.join(gold, rel)), exist_ok=True)
            open(os.path.join(gold, rel), "w").write(text)
    have = {}
    for dirpath, _, files in os.walk(gold):
        for f in files:
            have[os.path.relpath(os.path.join(dirpath, f), gold)] = open(os.path.join(dirpath, f)).read()
    diff = sorted(k for k in set(have) | set(dropins) if have.get(k) != dropins.get(k))
    say(not diff, f"drop-ins {name}: equal to nix/eval-scenarios/expected/{name}/" + (f"; differ: {diff} (compare with {system}; scripts/nix-check.sh --update rewrites them)" if diff else ""))
    if diff:
        import difflib
        d = diff[0]
        print("".join(list(difflib.unified_diff(have.get(d, "").splitlines(True), dropins.get(d, "").splitlines(True), "expected/" + name + "/" + d, "generated/" + d))[:20]))
    # Exposure of every service the scenario runs, with its drop-ins, against the shipped figure.
    with tempfile.TemporaryDirectory() as tmp:
        # Files copied; links kept (generateUnits' wants links of instances, e.g.
        # paratime-node@x.socket -> ../paratime-node@x.socket, name a template's instance).
        for dirpath, _, files in os.walk(system):
            dest = os.path.join(tmp, "etc/systemd/system", os.path.relpath(dirpath, system))
            os.makedirs(dest, exist_ok=True)
            for f in files:
                src = os.path.join(dirpath, f)
                if os.path.exists(src):
                    shutil.copyfile(src, os.path.join(dest, f))
                else:
                    os.symlink(os.readlink(src), os.path.join(dest, f))
        for unit in sorted(r["units"]):
            if not unit.endswith(".service"):
                continue
            base = re.sub(r"@[^.]*", "", unit)
            fig, p = exposure(["--root=" + tmp, unit])
            limit = figures.get(base)
            if fig is None or limit is None:
                say(False, f"exposure {name}/{unit}: {p.stdout[-300:]}{p.stderr[-300:]}")
            else:
                say(fig <= limit, f"exposure {name}/{unit}: {fig} (shipped {base}: {limit})")
    # The sandbox launcher runs as its own user: each bundles directory bound into it must lie
    # under one of its TemporaryFileSystem= mounts, or the node's 0700 directories above it
    # block the way (base unit or template with %i filled in, then the drop-in).
    for unit in sorted(u for u in r["units"] if u.startswith("paratime-node-sandbox") and u.endswith(".service")):
        inst = re.match(r"[^@]*@([^.]*)\.", unit)
        base = os.path.join(system, re.sub(r"@[^.]*", "@", unit) if inst else unit)
        text = open(base).read().replace("%i", inst.group(1)) if inst else open(base).read()
        dropin = os.path.join(system, unit + ".d", "overrides.conf")
        if os.path.exists(dropin):
            text += "\n" + open(dropin).read()
        lists = {"TemporaryFileSystem": [], "BindReadOnlyPaths": []}
        for line in text.splitlines():
            k, _, v = line.partition("=")
            if k in lists:
                lists[k] = [] if not v.strip() else lists[k] + [w.lstrip("-+").split(":")[-1 if k == "BindReadOnlyPaths" else 0] for w in v.split()]
        tmpfs = lists["TemporaryFileSystem"]
        unreachable = [b for b in lists["BindReadOnlyPaths"] if not any(b.startswith(t.rstrip("/") + "/") for t in tmpfs)]
        say(not unreachable, f"sandbox binds {name}/{unit}: under its TemporaryFileSystem= ({tmpfs})" + (f"; not: {unreachable}" if unreachable else ""))
    if name == "minimal":
        # The module's users and tmpfiles rules cover what the package ships for other systems.
        users = r["users"]
        groups = r["groups"]
        for conf in glob.glob("systemd/sysusers.d/*.conf"):
            for line in open(conf):
                f = line.split()
                if f and f[0] == "u":
                    say(f[1] in users and users[f[1]]["isSystemUser"] and f[1] in groups,
                        f"sysusers {f[1]}: a system user and group of the module")
        for u in glob.glob("systemd/*.service"):
            for line in open(u):
                m = re.match(r"(User|Group)=(\S+)", line)
                if m:
                    say(m.group(2) in (users if m.group(1) == "User" else groups),
                        f"{os.path.basename(u)}: {m.group(1)}={m.group(2)} exists in the module")
        rules = r["tmpfiles"]["rules"]
        for conf in glob.glob("systemd/tmpfiles.d/*.conf"):
            for line in open(conf):
                f = line.split()
                if f and not f[0].startswith("#") and len(f) > 1 and f[1].startswith("/var/lib/paratime-node"):
                    say(" ".join(f) in rules, f"tmpfiles {' '.join(f)}: in the module's rules")
sys.exit(1 if bad else 0)
PY
  ok "units, drop-ins, exposure, users and tmpfiles"
else
  fail "units: see the lines above"
fi

if [ "$failures" -gt 0 ]; then
  echo "nix-check: $failures part(s) FAILED"
  exit 1
fi
if [ "$skipped" -gt 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "nix-check: FAILED (CI=true and $skipped part(s) could not run)"
    exit 1
  fi
  echo "nix-check: passed, with $skipped part(s) SKIPPED"
  exit 0
fi
echo "nix-check: all passed"
