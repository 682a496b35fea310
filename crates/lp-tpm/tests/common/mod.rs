//! A real swtpm for each test: a unix socket in a private 0700 directory,
//! killed on drop. Never a mock.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Swtpm {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Swtpm {
    pub fn start() -> Swtpm {
        // libtss2 prints every TPM error; the tests provoke many on purpose.
        std::env::set_var("TSS2_LOG", "all+none");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("state dir");
        let sock = dir.path().join("tpm.sock");
        let mut child = Command::new("swtpm")
            .args(["socket", "--tpm2"])
            .arg(format!("--server=type=unixio,path={}", sock.display()))
            .arg(format!("--ctrl=type=unixio,path={}.ctrl", sock.display()))
            .arg(format!("--tpmstate=dir={}", state.display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm is installed");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(sock.exists() && PathBuf::from(format!("{}.ctrl", sock.display())).exists()) {
            assert!(child.try_wait().expect("try_wait").is_none(), "swtpm exited");
            assert!(Instant::now() < deadline, "swtpm did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        Swtpm { child, dir }
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:path={}", self.dir.path().join("tpm.sock").display())
    }

    pub fn open(&self) -> lp_tpm::TpmCustody {
        lp_tpm::TpmCustody::open(&self.tcti()).expect("open swtpm")
    }

    /// A raw tss-esapi context on this TPM: what an attacker with the
    /// user's privileges (and this source code) drives directly.
    pub fn raw(&self) -> tss_esapi::Context {
        use std::str::FromStr;
        let conf = tss_esapi::tcti_ldr::TctiNameConf::from_str(&self.tcti()).expect("tcti");
        tss_esapi::Context::new(conf).expect("raw context")
    }

    /// Run a tpm2-tools command against this TPM.
    pub fn tool(&self, name: &str, args: &[&str]) -> std::process::Output {
        Command::new(name)
            .args(args)
            .args(["-T", &self.tcti()])
            .env("TSS2_LOG", "all+none")
            .output()
            .expect("tpm2-tools are installed")
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
