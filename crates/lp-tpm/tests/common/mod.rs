//! A real swtpm for each test: reached only through a unix socket in its
//! own 0700 temporary directory (sockets and state files 0600), no TCP port
//! another uid could reach; killed on drop. Never a mock.
#![allow(dead_code)]

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Swtpm {
    child: Child,
    pub dir: tempfile::TempDir,
}

/// libtss2's swtpm TCTI finds the control channel at `<path>.ctrl`.
pub fn ctrl_path(sock: &Path) -> PathBuf {
    PathBuf::from(format!("{}.ctrl", sock.display()))
}

impl Swtpm {
    pub fn start() -> Swtpm {
        // libtss2 prints every TPM error; the tests provoke many on purpose.
        std::env::set_var("TSS2_LOG", "all+none");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let state = dir.path().join("state");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&state)
            .expect("state dir");
        let child = Self::spawn(dir.path());
        Swtpm { child, dir }
    }

    /// Kill swtpm and start it again on the same state with startup-clear:
    /// a TPM Reset, as at a power cycle or resume from hibernation. NV
    /// (the PIN index, the counters) survives; loaded objects and sessions
    /// do not.
    pub fn reset(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.socket());
        let _ = std::fs::remove_file(ctrl_path(&self.socket()));
        self.child = Self::spawn(self.dir.path());
    }

    fn spawn(dir: &Path) -> Child {
        let state = dir.join("state");
        let sock = dir.join("tpm.sock");
        let ctrl = ctrl_path(&sock);
        let mut child = Command::new("swtpm")
            .args(["socket", "--tpm2"])
            .arg(format!("--server=type=unixio,path={},mode=0600", sock.display()))
            .arg(format!("--ctrl=type=unixio,path={},mode=0600", ctrl.display()))
            .arg(format!("--tpmstate=dir={},mode=0600", state.display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm is installed");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            assert!(child.try_wait().expect("try_wait").is_none(), "swtpm exited");
            if UnixStream::connect(&sock).is_ok() && UnixStream::connect(&ctrl).is_ok() {
                return child;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("could not start swtpm");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("tpm.sock")
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:path={}", self.socket().display())
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
