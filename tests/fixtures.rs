//! The committed audio fixtures are exactly what `fixtures/make.sh` makes: regenerate them
//! into a temporary folder and compare byte for byte, so the truth in truth.json stays the
//! truth of the files the tests read.

use std::path::Path;
use std::process::Command;

#[test]
fn fixtures_regenerate_byte_for_byte() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(here.join("make.sh"))
        .env("FIXTURES_OUT", out.path())
        .output()
        .expect("run fixtures/make.sh");
    assert!(
        status.status.success(),
        "fixtures/make.sh failed (scripts/deps.sh installs espeak-ng and sox):\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let mut compared = 0;
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let committed = std::fs::read(here.join(name))
            .unwrap_or_else(|e| panic!("{} made but not committed: {e}", name.to_string_lossy()));
        assert!(
            committed == std::fs::read(&path).unwrap(),
            "{} differs from what make.sh makes",
            name.to_string_lossy()
        );
        compared += 1;
    }
    // 6 fixtures × 4 forms + long_call × 2 + truth.json
    assert_eq!(compared, 27);
}
