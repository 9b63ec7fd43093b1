//! Judging the kernel prerequisites from what the guest recorded after a step: `lsmod`,
//! `sysctl` of the three settings, and what sits at the two names in /etc that turn the
//! package's modules-load.d and sysctl.d files off (`STEP.lsmod`, `STEP.sysctl`,
//! `STEP.links`). Only br_netfilter and IP forwarding tell whether something applied the
//! files: containerd.service loads overlay itself (upstream's `ExecStartPre`), and the
//! bridge settings exist only while br_netfilter is loaded, at the module's default of 1.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, ensure, Context, Result};

use super::judge::{shown, Records};

pub const FORWARDING: &str = "net.ipv4.ip_forward";
pub const BRIDGE_SETTINGS: [&str; 2] = [
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
];
pub const MODULES: [&str; 2] = ["overlay", "br_netfilter"];

/// The kernel's state after a step, as the guest recorded it.
#[derive(Debug)]
pub struct State {
    modules: BTreeSet<String>,
    /// The settings sysctl could read, by name.
    settings: BTreeMap<String, String>,
    /// Each name in /etc: `Some(target)` for a link, `Some("")` for a file, `None` absent.
    links: BTreeMap<String, Option<String>>,
}

impl State {
    pub fn read(r: &Records, step: &str) -> Result<State> {
        r.rc_ok(&format!("{step}.lsmod"))?;
        let lsmod = r.log(&format!("{step}.lsmod"))?;
        let sysctl = r.log(&format!("{step}.sysctl"))?;
        r.rc_ok(&format!("{step}.links"))?;
        let links = r.log(&format!("{step}.links"))?;
        State::parse(&lsmod, &sysctl, &links).with_context(|| {
            let err = r.read(&format!("{step}.lsmod.err")).unwrap_or_default();
            format!("after {step} (lsmod's stderr: {})", shown(&err))
        })
    }

    fn parse(lsmod: &str, sysctl: &str, links: &str) -> Result<State> {
        let mut lines = lsmod.lines();
        ensure!(
            lines.next().is_some_and(|l| l.starts_with("Module")),
            "lsmod printed no header: {}",
            shown(lsmod)
        );
        let modules = lines
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        // "key = value"; a setting that does not exist is an error line of sysctl's.
        let settings = sysctl
            .lines()
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut parsed = BTreeMap::new();
        for line in links.lines().filter(|l| !l.trim().is_empty()) {
            let (path, what) = if let Some((p, t)) = line.split_once(" -> ") {
                (p, Some(t.to_owned()))
            } else if let Some(p) = line.strip_suffix(" is a file") {
                (p, Some(String::new()))
            } else if let Some(p) = line.strip_suffix(" absent") {
                (p, None)
            } else {
                bail!("cannot read the links' listing: {line:?}");
            };
            parsed.insert(path.to_owned(), what);
        }
        Ok(State {
            modules,
            settings,
            links: parsed,
        })
    }

    pub fn loaded(&self, module: &str) -> bool {
        self.modules.contains(module)
    }

    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }

    fn link(&self, path: &str) -> Result<Option<&str>> {
        self.links
            .get(path)
            .map(Option::as_deref)
            .with_context(|| format!("the guest did not look at {path}"))
    }

    /// What it shows, for the report.
    pub fn summary(&self) -> String {
        let modules = MODULES
            .iter()
            .map(|m| {
                format!(
                    "{m} {}",
                    if self.loaded(m) {
                        "loaded"
                    } else {
                        "not loaded"
                    }
                )
            })
            .collect::<Vec<_>>();
        let settings = std::iter::once(FORWARDING)
            .chain(BRIDGE_SETTINGS)
            .map(|k| format!("{k} = {}", self.setting(k).unwrap_or("(none)")))
            .collect::<Vec<_>>();
        format!(
            "lsmod: {}; sysctl: {}",
            modules.join(", "),
            settings.join(", ")
        )
    }
}

/// The names in /etc that turn the package's files off (README).
pub fn link_paths(package: &str) -> [String; 2] {
    [
        format!("/etc/modules-load.d/{package}.conf"),
        format!("/etc/sysctl.d/99-{package}.conf"),
    ]
}

/// What a step must have left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The files applied: no link, both modules loaded, the three settings 1.
    Applied,
    /// Nothing applied: both names linked to /dev/null, IP forwarding at the kernel's 0
    /// (where it was before the step), and br_netfilter as loaded as before the step
    /// (`loaded_before`): never loaded by the step, and never unloaded either. Loaded
    /// before, its two settings stay at the 0 the scenario set them to before the step
    /// (the module's default is 1); not loaded, they do not exist.
    NotApplied { loaded_before: bool },
}

/// Holds `state` to `expect`; returns what it found.
pub fn judge(state: &State, expect: Expect, package: &str) -> Result<String> {
    let links = link_paths(package);
    match expect {
        Expect::Applied => {
            for path in &links {
                if let Some(target) = state.link(path)? {
                    bail!(
                        "{path} is there ({}), though the answer is true",
                        shown_link(target)
                    );
                }
            }
            for module in MODULES {
                ensure!(
                    state.loaded(module),
                    "{module} is not loaded: {}",
                    state.summary()
                );
            }
            for key in std::iter::once(FORWARDING).chain(BRIDGE_SETTINGS) {
                ensure!(
                    state.setting(key) == Some("1"),
                    "{key} is not 1: {}",
                    state.summary()
                );
            }
            Ok(format!("no link in /etc; {}", state.summary()))
        }
        Expect::NotApplied { loaded_before } => {
            links_to_null(state, package)?;
            ensure!(
                state.setting(FORWARDING) == Some("0"),
                "{FORWARDING} is {:?}, expected the kernel's default 0: {}",
                state.setting(FORWARDING),
                state.summary()
            );
            ensure!(
                state.loaded("br_netfilter") == loaded_before,
                "br_netfilter is {} after the step, and was {} before it: {}",
                loaded_word(state.loaded("br_netfilter")),
                loaded_word(loaded_before),
                state.summary()
            );
            let want = loaded_before.then_some("0");
            for key in BRIDGE_SETTINGS {
                ensure!(
                    state.setting(key) == want,
                    "{key} is {:?}, expected {want:?} (br_netfilter {} before the step): {}",
                    state.setting(key),
                    loaded_word(loaded_before),
                    state.summary()
                );
            }
            Ok(format!(
                "{} -> /dev/null; {}",
                links.join(" and "),
                state.summary()
            ))
        }
    }
}

/// The state before the package: neither br_netfilter nor IP forwarding on, no link.
pub fn untouched(state: &State, package: &str) -> Result<String> {
    for path in link_paths(package) {
        ensure!(state.link(&path)?.is_none(), "{path} is already there");
    }
    ensure!(
        !state.loaded("br_netfilter") && state.setting(FORWARDING) == Some("0"),
        "the node already has br_netfilter or IP forwarding on, so nothing could show what the package applies: {}",
        state.summary()
    );
    Ok(state.summary())
}

/// What the scenario undid before running the boot units again: br_netfilter unloaded
/// and IP forwarding off, so that only the units can bring them back.
pub fn undone(state: &State) -> Result<String> {
    ensure!(
        !state.loaded("br_netfilter") && state.setting(FORWARDING) == Some("0"),
        "the scenario could not undo what the installation applied: {}",
        state.summary()
    );
    Ok(state.summary())
}

/// Both names in /etc are links to /dev/null.
pub fn links_to_null(state: &State, package: &str) -> Result<()> {
    for path in link_paths(package) {
        let target = state.link(&path)?;
        ensure!(
            target == Some("/dev/null"),
            "{path} is {}, expected a link to /dev/null",
            target.map_or("absent".to_owned(), shown_link)
        );
    }
    Ok(())
}

/// Neither name in /etc is there (after a purge).
pub fn links_gone(state: &State, package: &str) -> Result<()> {
    for path in link_paths(package) {
        if let Some(target) = state.link(&path)? {
            bail!("{path} is still there ({})", shown_link(target));
        }
    }
    Ok(())
}

fn shown_link(target: &str) -> String {
    if target.is_empty() {
        "a file".to_owned()
    } else {
        format!("a link to {target}")
    }
}

fn loaded_word(loaded: bool) -> &'static str {
    if loaded {
        "loaded"
    } else {
        "not loaded"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LSMOD_BOTH: &str = "Module                  Size  Used by\nbr_netfilter           32768  0\nbridge                364544  1 br_netfilter\noverlay               200704  0\n";
    const LSMOD_OVERLAY: &str =
        "Module                  Size  Used by\noverlay               200704  0\n";
    const APPLIED: &str = "net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n";
    const DEFAULTS: &str = "net.ipv4.ip_forward = 0\nsysctl: cannot stat /proc/sys/net/bridge/bridge-nf-call-iptables: No such file or directory\nsysctl: cannot stat /proc/sys/net/bridge/bridge-nf-call-ip6tables: No such file or directory\n";
    const NO_LINKS: &str = "/etc/modules-load.d/cs.conf absent\n/etc/sysctl.d/99-cs.conf absent\n";
    const LINKS: &str =
        "/etc/modules-load.d/cs.conf -> /dev/null\n/etc/sysctl.d/99-cs.conf -> /dev/null\n";

    fn state(lsmod: &str, sysctl: &str, links: &str) -> State {
        State::parse(lsmod, sysctl, links).unwrap()
    }

    #[test]
    fn applied_needs_both_modules_all_three_settings_and_no_link() {
        assert!(judge(&state(LSMOD_BOTH, APPLIED, NO_LINKS), Expect::Applied, "cs").is_ok());
        let err = judge(
            &state(LSMOD_OVERLAY, APPLIED, NO_LINKS),
            Expect::Applied,
            "cs",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("br_netfilter is not loaded"), "{err}");
        let half = APPLIED.replace("ip_forward = 1", "ip_forward = 0");
        assert!(judge(&state(LSMOD_BOTH, &half, NO_LINKS), Expect::Applied, "cs").is_err());
        let err = judge(&state(LSMOD_BOTH, APPLIED, LINKS), Expect::Applied, "cs")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a link to /dev/null"), "{err}");
    }

    #[test]
    fn not_applied_needs_the_links_and_the_defaults() {
        let fresh = Expect::NotApplied {
            loaded_before: false,
        };
        assert!(judge(&state(LSMOD_OVERLAY, DEFAULTS, LINKS), fresh, "cs").is_ok());
        // Anything the step applied shows.
        assert!(judge(&state(LSMOD_BOTH, DEFAULTS, LINKS), fresh, "cs").is_err());
        let on = DEFAULTS.replace("ip_forward = 0", "ip_forward = 1");
        assert!(judge(&state(LSMOD_OVERLAY, &on, LINKS), fresh, "cs").is_err());
        assert!(judge(&state(LSMOD_OVERLAY, DEFAULTS, NO_LINKS), fresh, "cs").is_err());
        let file = LINKS.replace(
            "/etc/sysctl.d/99-cs.conf -> /dev/null",
            "/etc/sysctl.d/99-cs.conf is a file",
        );
        assert!(judge(&state(LSMOD_OVERLAY, DEFAULTS, &file), fresh, "cs").is_err());
        // Loaded before, it stays loaded: nothing unloads it.
        let kept = Expect::NotApplied {
            loaded_before: true,
        };
        let reset = APPLIED.replace(" = 1", " = 0");
        assert!(judge(&state(LSMOD_BOTH, &reset, LINKS), kept, "cs").is_ok());
        assert!(judge(&state(LSMOD_BOTH, APPLIED, LINKS), kept, "cs").is_err());
        // The sysctl file applied again would put the bridge settings back to 1.
        let bridge_on = reset.replace("iptables = 0", "iptables = 1");
        let err = judge(&state(LSMOD_BOTH, &bridge_on, LINKS), kept, "cs")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bridge-nf-call-iptables"), "{err}");
    }

    #[test]
    fn the_node_before_must_have_nothing_on() {
        assert!(untouched(&state(LSMOD_OVERLAY, DEFAULTS, NO_LINKS), "cs").is_ok());
        assert!(untouched(&state(LSMOD_BOTH, DEFAULTS, NO_LINKS), "cs").is_err());
        assert!(untouched(&state(LSMOD_OVERLAY, DEFAULTS, LINKS), "cs").is_err());
    }

    #[test]
    fn a_listing_it_cannot_read_is_an_error() {
        assert!(State::parse(LSMOD_BOTH, APPLIED, "/etc/x somewhere\n").is_err());
        assert!(State::parse("", APPLIED, NO_LINKS).is_err());
        // A path the guest did not look at is not "absent".
        let s = state(LSMOD_BOTH, APPLIED, "/etc/modules-load.d/cs.conf absent\n");
        assert!(judge(&s, Expect::Applied, "cs").is_err());
    }
}
