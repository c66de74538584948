//! A private tmux server (its own socket) with one session `t` running an interactive shell
//! of a fixed size: the terminal the live-view tests type into and read back. Every wait
//! polls the screen a bounded number of times, never sleeps a fixed time. Killed on drop.

#![allow(dead_code)] // Each test crate uses its own part of it.

use std::process::{Command, Output};
use std::time::Duration;

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts the server and a `sh -i` of `width` x `height` whose prompt is `prompt`, in
    /// `dir` (or the current directory), and waits for the prompt.
    pub fn start(name: &str, width: u16, height: u16, prompt: &str, dir: Option<&str>) -> Tmux {
        let tmux = Tmux {
            socket: format!("{name}-{}", std::process::id()),
        };
        let (w, h, ps1) = (
            width.to_string(),
            height.to_string(),
            format!("PS1={prompt}"),
        );
        let mut args = vec![
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &w,
            "-y",
            &h,
        ];
        if let Some(d) = dir {
            args.extend(["-c", d]);
        }
        args.extend(["env", &ps1, "TERM=xterm-256color", "sh", "-i"]);
        let o = tmux.run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        tmux.wait_for(prompt.trim_end());
        tmux
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux (cargo xtask setup installs it)")
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", "t"];
        a.extend_from_slice(keys);
        assert!(self.run(&a).status.success());
    }

    /// Types `line` and Enter.
    pub fn type_line(&self, line: &str) {
        self.keys(&["-l", line]);
        self.keys(&["Enter"]);
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// Polls the screen until `pred` holds; panics with the last screen.
    pub fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut s = String::new();
        for _ in 0..400 {
            s = self.screen();
            if pred(&s) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("timed out waiting for {what}; screen:\n{s}");
    }

    pub fn wait_for(&self, text: &str) -> String {
        self.wait(text, |s| s.contains(text))
    }

    /// `1` while a full-screen program holds the terminal's alternate screen.
    pub fn alternate_on(&self) -> String {
        let o = self.run(&["display", "-p", "-t", "t", "#{alternate_on}"]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
