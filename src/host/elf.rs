//! Which files an ELF executable needs: its interpreter and shared libraries (DT_NEEDED,
//! recursively), resolved through DT_RUNPATH/DT_RPATH and the system library directories.
//! The sandbox binds exactly these, read-only, at the paths the dynamic loader looks for them.
//! The executable is parsed, never run (`ldd` would run it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SYSTEM_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// What one ELF file asks of the loader.
struct Needs {
    interpreter: Option<String>,
    libraries: Vec<String>,
    search: Vec<String>,
}

fn parse(path: &Path) -> Result<Needs, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let elf = goblin::elf::Elf::parse(&data)
        .map_err(|e| format!("{} is not a valid ELF file: {e}", path.display()))?;
    let origin = path
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let search: Vec<String> = elf
        .runpaths
        .iter()
        .chain(elf.rpaths.iter())
        .flat_map(|s| s.split(':'))
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("$ORIGIN", &origin).replace("${ORIGIN}", &origin))
        .collect();
    Ok(Needs {
        interpreter: elf.interpreter.map(str::to_string),
        libraries: elf.libraries.iter().map(|s| s.to_string()).collect(),
        search,
    })
}

/// Maps each path the loader will open inside the sandbox to the real file to bind there.
pub fn dependencies(executable: &Path) -> Result<BTreeMap<PathBuf, PathBuf>, String> {
    let mut binds = BTreeMap::new();
    let Needs {
        interpreter,
        libraries: libs,
        search,
    } = parse(executable)?;
    if let Some(interp) = interpreter {
        let real = std::fs::canonicalize(&interp)
            .map_err(|e| format!("interpreter {interp} of {}: {e}", executable.display()))?;
        binds.insert(PathBuf::from(&interp), real);
    }
    let mut queue: Vec<(String, Vec<String>)> =
        libs.into_iter().map(|l| (l, search.clone())).collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some((lib, search)) = queue.pop() {
        if !seen.insert(lib.clone()) {
            continue;
        }
        let found = if lib.contains('/') {
            Some(PathBuf::from(&lib))
        } else {
            search
                .iter()
                .map(String::as_str)
                .chain(SYSTEM_DIRS.iter().copied())
                .map(|d| Path::new(d).join(&lib))
                .find(|p| p.is_file())
        };
        let path = found.ok_or_else(|| {
            format!(
                "shared library {lib} needed by {} was not found",
                executable.display()
            )
        })?;
        let real = std::fs::canonicalize(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let more = parse(&real)?;
        queue.extend(more.libraries.into_iter().map(|l| (l, more.search.clone())));
        binds.insert(path, real);
    }
    Ok(binds)
}
