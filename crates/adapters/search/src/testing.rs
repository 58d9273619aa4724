//! Test support: an in-memory OpenSearch-compatible server for the adapter and end-to-end
//! suites (no real cluster can run on the test machines).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

/// An in-memory OpenSearch-compatible server (`osmem-server`, from PyPI) on a free port,
/// stopped when dropped.
pub struct Osmem {
    child: std::process::Child,
    /// Base URL of the server.
    pub url: String,
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The osmem-server binary: `OSMEM_SERVER_BIN`, else the one bundled in the Python package.
fn osmem_binary() -> Option<String> {
    if let Ok(bin) = std::env::var("OSMEM_SERVER_BIN") {
        return Some(bin);
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import osmem_server; print(osmem_server.resolve_binary())",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Osmem {
    /// Starts osmem-server; `None` (a skip) when it is not installed, a failure under CI.
    pub fn start() -> Option<Osmem> {
        use std::io::BufRead;
        let Some(bin) = osmem_binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "osmem-server is not installed (pip install osmem-server)"
            );
            eprintln!("*** SKIPPED: osmem-server is not installed (pip install osmem-server) ***");
            return None;
        };
        let mut child = std::process::Command::new(&bin)
            .args([
                "--addr",
                "127.0.0.1:0",
                "--no-ja",
                "--parent-pid",
                &std::process::id().to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("osmem-server said {line:?}: {e}"));
        let url = ready["url"].as_str().unwrap().to_owned();
        Some(Osmem { child, url })
    }
}
