//! Judging what the guest recorded. The scenario and the CRI client only act and record
//! (`scenario.sh`, `cri.py`); every verdict is made here, after poweroff, from the job
//! disk's `out/`: a step's `.log` and `.rc`, a CRI phase's `.json` (each call's response
//! or gRPC status, and facts such as a process's cgroup), copies of the config, listings
//! of the tree. The CRI checks are named ([`VERSION`] … [`CGROUP`]) so that a run broken
//! on purpose can be held to failing exactly the checks its breakage must fail.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;

use crate::process::last_lines;

pub const VERSION: &str = "Version";
pub const STATUS: &str = "Status";
pub const RUNTIME_CONFIG: &str = "RuntimeConfig";
pub const RUN_POD: &str = "RunPodSandbox";
pub const SANDBOX_IMAGE: &str = "sandbox image";
pub const PULL_IMAGE: &str = "PullImage";
pub const CONTAINER: &str = "CreateContainer + StartContainer";
pub const EXEC: &str = "ExecSync ping";
pub const CGROUP: &str = "systemd cgroup";

/// The subnet of the package's bridge network (its CNI conflist).
const BRIDGE: (u8, u8) = (10, 88);

/// The job disk's records, as read back.
pub struct Records {
    pub dir: PathBuf,
}

impl Records {
    pub fn read(&self, name: &str) -> Result<String> {
        let path = self.dir.join(name);
        fs::read_to_string(&path).with_context(|| format!("the guest left no {}", path.display()))
    }

    pub fn log(&self, step: &str) -> Result<String> {
        self.read(&format!("{step}.log"))
    }

    /// The step ran and exited 0.
    pub fn rc_ok(&self, step: &str) -> Result<()> {
        let rc = self.read(&format!("{step}.rc"))?;
        ensure!(
            rc.trim() == "0",
            "`{step}` in the guest exited with status {}: {}",
            rc.trim(),
            shown(&self.log(step).unwrap_or_default())
        );
        Ok(())
    }

    /// A CRI phase's record.
    pub fn cri(&self, step: &str) -> Result<Cri> {
        let path = self.dir.join(format!("{step}.json"));
        let text = fs::read_to_string(&path).with_context(|| {
            format!(
                "the CRI client left no record {} ({})",
                path.display(),
                shown(&self.log(step).unwrap_or_default())
            )
        })?;
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not the client's JSON", path.display()))?;
        let steps = doc["steps"]
            .as_array()
            .cloned()
            .with_context(|| format!("{}: no steps", path.display()))?;
        Ok(Cri { steps, path })
    }
}

/// One CRI phase: the calls made and facts gathered, in order.
pub struct Cri {
    steps: Vec<Value>,
    path: PathBuf,
}

impl Cri {
    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.steps
            .iter()
            .find(|s| s["kind"] == kind && s["step"] == name)
    }

    fn last_step(&self) -> String {
        self.steps
            .last()
            .and_then(|s| s["step"].as_str())
            .unwrap_or("none")
            .to_owned()
    }

    /// The response of `call`; a verdict when it was never made or failed.
    fn response(&self, call: &str) -> Result<&Value, Verdict> {
        let Some(step) = self.find("call", call) else {
            return Err(Verdict::NotReached(format!(
                "no {call} call (the client's last step: {})",
                self.last_step()
            )));
        };
        if step["ok"] != true {
            return Err(Verdict::Fail(format!(
                "{call} failed: {}: {}",
                step["code"].as_str().unwrap_or("?"),
                step["details"].as_str().unwrap_or("")
            )));
        }
        Ok(&step["response"])
    }

    fn fact(&self, name: &str) -> Result<&Value, Verdict> {
        self.find("fact", name).map(|s| &s["value"]).ok_or_else(|| {
            Verdict::NotReached(format!(
                "no {name:?} in the record (the client's last step: {})",
                self.last_step()
            ))
        })
    }

    /// Whether the phase made any call: a down phase has nothing to do when the up phase
    /// started no pod.
    pub fn made_calls(&self) -> bool {
        self.steps.iter().any(|s| s["kind"] == "call")
    }

    /// The client ran to its end (a crash of it is not a verdict on containerd).
    pub fn done(&self) -> Result<()> {
        ensure!(
            self.find("fact", "done").is_some(),
            "the CRI client stopped before its end ({}, last step {})",
            self.path.display(),
            self.last_step()
        );
        Ok(())
    }
}

/// A check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
    /// An earlier call failed, so this one was never made.
    NotReached(String),
}

/// A named check and its outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: &'static str,
    pub verdict: Verdict,
}

impl Outcome {
    fn of(name: &'static str, result: Result<String, Verdict>) -> Outcome {
        Outcome {
            name,
            verdict: result.map_or_else(|v| v, Verdict::Pass),
        }
    }

    /// What it found, or why it failed, as an error.
    pub fn passed(&self) -> Result<String> {
        match &self.verdict {
            Verdict::Pass(detail) => Ok(detail.clone()),
            Verdict::Fail(why) => Err(anyhow!("{why}")),
            Verdict::NotReached(why) => Err(anyhow!("not reached: {why}")),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            Verdict::Pass(d) => write!(f, "{}: passed ({d})", self.name),
            Verdict::Fail(d) => write!(f, "{}: FAILED ({d})", self.name),
            Verdict::NotReached(d) => write!(f, "{}: not reached ({d})", self.name),
        }
    }
}

fn fail(why: String) -> Verdict {
    Verdict::Fail(why)
}

/// What a set's checks expect of it.
pub struct Expect<'a> {
    /// The configured sandbox image, and the id (config digest) of the one made for it.
    pub sandbox_image: &'a str,
    pub sandbox_id: &'a str,
    /// The container's image, and its id.
    pub image: &'a str,
    pub image_id: &'a str,
    /// containerd's upstream version (`2.1.9`).
    pub containerd: &'a str,
}

impl Expect<'_> {
    pub fn major(&self) -> u32 {
        self.containerd
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }
}

/// The checks of the `up` phase, in the order of the calls they judge.
pub fn up(cri: &Cri, e: &Expect) -> Vec<Outcome> {
    vec![
        Outcome::of(VERSION, version(cri)),
        Outcome::of(STATUS, status(cri)),
        Outcome::of(RUNTIME_CONFIG, runtime_config(cri, e)),
        Outcome::of(RUN_POD, run_pod(cri, e)),
        Outcome::of(SANDBOX_IMAGE, sandbox_image(cri, e)),
        Outcome::of(PULL_IMAGE, pull_image(cri, e)),
        Outcome::of(CONTAINER, container(cri)),
        Outcome::of(EXEC, exec(cri)),
        Outcome::of(CGROUP, cgroup(cri)),
    ]
}

fn version(cri: &Cri) -> Result<String, Verdict> {
    let r = cri.response("Version")?;
    let api = r["runtime_api_version"].as_str().unwrap_or_default();
    if api != "v1" {
        return Err(fail(format!("runtime_api_version is {api:?}, expected v1")));
    }
    Ok(format!(
        "runtime_api_version v1, {} {}",
        r["runtime_name"].as_str().unwrap_or("?"),
        r["runtime_version"].as_str().unwrap_or("?")
    ))
}

fn status(cri: &Cri) -> Result<String, Verdict> {
    let r = cri.response("Status")?;
    let conditions = r["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut wrong = Vec::new();
    for wanted in ["RuntimeReady", "NetworkReady"] {
        match conditions.iter().find(|c| c["type"] == wanted) {
            None => wrong.push(format!("no {wanted} condition")),
            Some(c) if c["status"] != true => wrong.push(format!(
                "{wanted} is false ({}: {})",
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )),
            Some(_) => {}
        }
    }
    if !wrong.is_empty() {
        return Err(fail(wrong.join("; ")));
    }
    Ok("RuntimeReady and NetworkReady are true".to_owned())
}

fn runtime_config(cri: &Cri, e: &Expect) -> Result<String, Verdict> {
    match cri.response("RuntimeConfig") {
        Ok(r) => {
            let Some(linux) = r.get("linux") else {
                return Err(fail(
                    "RuntimeConfig answered without its linux part".to_owned(),
                ));
            };
            match linux["cgroup_driver"].as_str() {
                Some("SYSTEMD") => Ok("cgroup_driver SYSTEMD".to_owned()),
                other => Err(fail(format!(
                    "cgroup_driver is {}, expected SYSTEMD",
                    other.unwrap_or("absent")
                ))),
            }
        }
        // containerd 1.x predates the call.
        Err(Verdict::Fail(why)) if e.major() < 2 && why.contains(": UNIMPLEMENTED:") => Ok(
            format!("UNIMPLEMENTED, as containerd {} answers", e.containerd),
        ),
        Err(v) => Err(v),
    }
}

/// ImageStatus's answer for `step`: the image's tags and id, `None` when containerd has
/// no such image.
fn image_of(cri: &Cri, step: &str) -> Result<Option<(Vec<String>, String)>, Verdict> {
    let r = cri.response(step)?;
    let Some(id) = r["image"]["id"].as_str().filter(|i| !i.is_empty()) else {
        return Ok(None);
    };
    let tags = r["image"]["repo_tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Some((tags, id.to_owned())))
}

/// ImageStatus `step` finds `reference` with the id of the image made for it.
fn image_is(cri: &Cri, step: &str, reference: &str, id: &str) -> Result<String, Verdict> {
    match image_of(cri, step)? {
        None => Err(fail(format!("{step}: containerd has no {reference}"))),
        Some((tags, _)) if !tags.iter().any(|t| t == reference) => Err(fail(format!(
            "{step}: the image is tagged {tags:?}, not {reference}"
        ))),
        Some((_, got)) if got != id => Err(fail(format!(
            "{step}: {reference} is {got}, not the image made for it ({id})"
        ))),
        Some(_) => Ok(format!("{reference} ({})", short(id))),
    }
}

/// The sandbox image, once RunPodSandbox has run, is the one made for it.
fn sandbox_image(cri: &Cri, e: &Expect) -> Result<String, Verdict> {
    image_is(cri, "ImageStatus sandbox", e.sandbox_image, e.sandbox_id)
}

/// PullImage brought the container's image: it answers with the image's id, and
/// ImageStatus then finds it.
fn pull_image(cri: &Cri, e: &Expect) -> Result<String, Verdict> {
    let r = cri.response("PullImage")?;
    let got = r["image_ref"].as_str().unwrap_or_default();
    if got != e.image_id {
        return Err(fail(format!(
            "PullImage of {} answered {got:?}, not the id of the image made for it ({})",
            e.image, e.image_id
        )));
    }
    let found = image_is(cri, "ImageStatus image", e.image, e.image_id)?;
    Ok(format!("pulled {found}"))
}

/// Which of the images (`"sandbox"`, `"image"`) containerd had before the pod, by
/// ImageStatus; an error when the client did not ask.
pub fn present_before(cri: &Cri, which: &str) -> Result<bool> {
    image_of(cri, &format!("ImageStatus {which} before"))
        .map(|i| i.is_some())
        .map_err(|v| anyhow!("ImageStatus {which} before: {v:?}"))
}

fn run_pod(cri: &Cri, e: &Expect) -> Result<String, Verdict> {
    let id = cri.response("RunPodSandbox")?["pod_sandbox_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let status = &cri.response("PodSandboxStatus")?["status"];
    let state = status["state"].as_str().unwrap_or("?");
    if state != "SANDBOX_READY" {
        return Err(fail(format!("the pod is {state}, expected SANDBOX_READY")));
    }
    let ip = status["network"]["ip"].as_str().unwrap_or_default();
    let on_bridge = ip
        .parse::<Ipv4Addr>()
        .is_ok_and(|a| (a.octets()[0], a.octets()[1]) == BRIDGE);
    if !on_bridge {
        return Err(fail(format!(
            "the pod's IP is {ip:?}, not one of the bridge's 10.88.0.0/16"
        )));
    }
    let info = cri.fact("sandbox container")?;
    let image = serde_json::from_str::<Value>(info["stdout"].as_str().unwrap_or_default())
        .ok()
        .and_then(|v| v["Image"].as_str().map(str::to_owned))
        .ok_or_else(|| {
            fail(format!(
                "ctr containers info {id} says nothing of an image: {}",
                shown(info["stderr"].as_str().unwrap_or_default())
            ))
        })?;
    if image != e.sandbox_image {
        return Err(fail(format!(
            "the sandbox runs {image}, not the configured {}",
            e.sandbox_image
        )));
    }
    Ok(format!(
        "pod {} SANDBOX_READY, IP {ip} from the bridge, its sandbox runs {image}",
        short(&id)
    ))
}

fn container(cri: &Cri) -> Result<String, Verdict> {
    let id = cri.response("CreateContainer")?["container_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    cri.response("StartContainer")?;
    let (state, pid) = container_state(cri)?;
    if state != "CONTAINER_RUNNING" {
        return Err(fail(format!(
            "the container is {state}, expected CONTAINER_RUNNING"
        )));
    }
    Ok(format!(
        "container {} CONTAINER_RUNNING, pid {pid}",
        short(&id)
    ))
}

/// ContainerStatus's state and the pid from its verbose info.
fn container_state(cri: &Cri) -> Result<(String, u64), Verdict> {
    let state = cri.response("ContainerStatus")?["status"]["state"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let fact = cri.fact("ContainerStatus pid")?;
    let pid = fact["pid"]
        .as_u64()
        .filter(|p| *p > 0)
        .ok_or_else(|| fail(format!("ContainerStatus: {}", fact["error"])))?;
    Ok((state, pid))
}

fn exec(cri: &Cri) -> Result<String, Verdict> {
    cri.response("ExecSync")?;
    let out = cri.fact("ExecSync output")?;
    let stdout = out["stdout"].as_str().unwrap_or_default();
    let summary = stdout
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_default()
        .trim();
    if out["exit_code"] != 0 || !summary.contains(" 1 packets received") {
        return Err(fail(format!(
            "ping -c 1 10.88.0.1 in the container: exit code {}, {}",
            out["exit_code"],
            shown(&format!(
                "{stdout}{}",
                out["stderr"].as_str().unwrap_or_default()
            ))
        )));
    }
    Ok(format!("ping 10.88.0.1 in the container: {summary}"))
}

/// The `0::` line of a /proc/PID/cgroup: the process's cgroup v2 path.
fn cgroup_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
}

fn cgroup(cri: &Cri) -> Result<String, Verdict> {
    let id = cri.response("CreateContainer")?["container_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let parent = cri.fact("pod")?["cgroup_parent"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, pid) = container_state(cri)?;
    let fact = cri.fact("cgroup")?;
    let path = cgroup_path(fact["proc_cgroup"].as_str().unwrap_or_default())
        .unwrap_or_default()
        .to_owned();
    let scope = format!("cri-containerd-{id}.scope");
    if !path.ends_with(&format!("/{parent}/{scope}")) {
        return Err(fail(format!(
            "the container's process (pid {pid}) is in {path:?}, not in {scope} under the pod's {parent}"
        )));
    }
    let systemd = fact["systemd"]["stdout"].as_str().unwrap_or_default();
    let lines: BTreeSet<&str> = systemd.lines().map(str::trim).collect();
    if !lines.contains("ActiveState=active")
        || !lines.contains(format!("ControlGroup={path}").as_str())
    {
        return Err(fail(format!(
            "systemd does not run {scope} at {path}: systemctl show says {}",
            shown(systemd)
        )));
    }
    Ok(format!("pid {pid} in {path}, a scope systemd runs"))
}

/// The checks after containerd was restarted under the running pod: the container is the
/// same process, in the same cgroup, and still answers.
pub fn after_upgrade(up: &Cri, after: &Cri) -> Vec<Outcome> {
    vec![
        Outcome::of(STATUS, status(after)),
        Outcome::of("the container kept running", kept(up, after)),
        Outcome::of(EXEC, exec(after)),
    ]
}

fn kept(up: &Cri, after: &Cri) -> Result<String, Verdict> {
    let (_, before) = container_state(up)?;
    let (state, pid) = container_state(after)?;
    if state != "CONTAINER_RUNNING" || pid != before {
        return Err(fail(format!(
            "after the upgrade the container is {state} with pid {pid}; before it ran with pid {before}"
        )));
    }
    let path = |cri: &Cri| -> Result<String, Verdict> {
        Ok(cgroup_path(
            cri.fact("cgroup")?["proc_cgroup"]
                .as_str()
                .unwrap_or_default(),
        )
        .unwrap_or_default()
        .to_owned())
    };
    let (was, is) = (path(up)?, path(after)?);
    if was != is {
        return Err(fail(format!(
            "the container's cgroup moved from {was} to {is}"
        )));
    }
    Ok(format!(
        "CONTAINER_RUNNING, pid {pid} before and after, still in {is}"
    ))
}

/// The checks of the `down` phase.
pub fn down(cri: &Cri) -> Vec<Outcome> {
    vec![Outcome::of(
        "StopPodSandbox + RemovePodSandbox",
        removed(cri),
    )]
}

fn removed(cri: &Cri) -> Result<String, Verdict> {
    cri.response("StopPodSandbox")?;
    cri.response("RemovePodSandbox")?;
    let pods = cri.response("ListPodSandbox")?["items"]
        .as_array()
        .map_or(0, Vec::len);
    let containers = cri.response("ListContainers")?["containers"]
        .as_array()
        .map_or(0, Vec::len);
    if pods != 0 || containers != 0 {
        return Err(fail(format!(
            "after RemovePodSandbox the CRI still lists {pods} pod(s) and {containers} container(s)"
        )));
    }
    Ok("no pod and no container left".to_owned())
}

/// Holds a broken run to its breakage: exactly the checks in `expected` fail, each for
/// the reason `why` names; every other one passes or was never reached. Returns the
/// failures, as the report shows them.
pub fn broken(outcomes: &[Outcome], expected: &[(&str, &str)]) -> Result<String> {
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Fail(_)))
        .collect();
    let names: BTreeSet<&str> = failed.iter().map(|o| o.name).collect();
    let wanted: BTreeSet<&str> = expected.iter().map(|(n, _)| *n).collect();
    ensure!(
        names == wanted,
        "expected exactly {wanted:?} to fail, found {names:?}: {}",
        outcomes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    for (name, why) in expected {
        let found = failed
            .iter()
            .find(|o| o.name == *name)
            .map(|o| o.to_string())
            .unwrap_or_default();
        ensure!(
            found.to_lowercase().contains(&why.to_lowercase()),
            "{name} failed, but not because of the breakage (expected {why:?}): {found}"
        );
    }
    // Not reached is only fine after a failure: a check that has nothing to judge
    // otherwise is a check that did not run.
    let first_failure = outcomes
        .iter()
        .position(|o| matches!(o.verdict, Verdict::Fail(_)));
    if let Some(o) = outcomes
        .iter()
        .enumerate()
        .find(|(i, o)| matches!(o.verdict, Verdict::NotReached(_)) && Some(*i) < first_failure)
        .map(|(_, o)| o)
    {
        bail!("{o}, before any expected failure");
    }
    Ok(failed
        .iter()
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join("; "))
}

/// A setting of containerd's config, found in its schema's table.
#[derive(Debug, Clone, Copy)]
pub enum Setting {
    SystemdCgroup,
    SandboxImage,
    LogLineSize,
    /// Where the CRI looks for registry hosts files.
    ConfigPath,
}

impl Setting {
    /// Where it lives in config `version` 2 (containerd 1.6, 1.7) and 3 or 4 (2.x);
    /// REFERENCE.md, "containerd config: where the settings live".
    fn path(self, version: i64) -> Option<&'static [&'static str]> {
        const V2_CRI: &str = "io.containerd.grpc.v1.cri";
        const V3_RUNTIME: &str = "io.containerd.cri.v1.runtime";
        Some(match (version, self) {
            (2, Setting::SystemdCgroup) => &[
                "plugins",
                V2_CRI,
                "containerd",
                "runtimes",
                "runc",
                "options",
                "SystemdCgroup",
            ],
            (2, Setting::SandboxImage) => &["plugins", V2_CRI, "sandbox_image"],
            (2, Setting::LogLineSize) => &["plugins", V2_CRI, "max_container_log_line_size"],
            (2, Setting::ConfigPath) => &["plugins", V2_CRI, "registry", "config_path"],
            (3 | 4, Setting::SystemdCgroup) => &[
                "plugins",
                V3_RUNTIME,
                "containerd",
                "runtimes",
                "runc",
                "options",
                "SystemdCgroup",
            ],
            (3 | 4, Setting::SandboxImage) => &[
                "plugins",
                "io.containerd.cri.v1.images",
                "pinned_images",
                "sandbox",
            ],
            (3 | 4, Setting::LogLineSize) => {
                &["plugins", V3_RUNTIME, "max_container_log_line_size"]
            }
            (3 | 4, Setting::ConfigPath) => &[
                "plugins",
                "io.containerd.cri.v1.images",
                "registry",
                "config_path",
            ],
            _ => return None,
        })
    }
}

/// `containerd config dump` read as containerd sees it: its schema version and settings.
pub struct Dump(toml::Table);

impl Dump {
    pub fn parse(text: &str) -> Result<Dump> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| anyhow!("config dump is not TOML: {}", e.message()))?;
        Ok(Dump(table))
    }

    pub fn version(&self) -> Option<i64> {
        self.0.get("version").and_then(toml::Value::as_integer)
    }

    pub fn get(&self, setting: Setting) -> Option<&toml::Value> {
        let path = setting.path(self.version()?)?;
        let (last, tables) = path.split_last()?;
        let mut table = &self.0;
        for key in tables {
            table = table.get(*key)?.as_table()?;
        }
        table.get(*last)
    }
}

/// A paths listing's entries only in `new` and those only in `old`, the volatile ones
/// left out.
pub fn tree_changes(old: &str, new: &str, volatile: &[(&str, bool)]) -> (Vec<String>, Vec<String>) {
    let skip = |p: &&str| {
        volatile.iter().any(|(v, subtree)| {
            *p == *v || (*subtree && p.strip_prefix(v).is_some_and(|r| r.starts_with('/')))
        })
    };
    let old: BTreeSet<&str> = old.lines().filter(|p| !skip(p)).collect();
    let new: BTreeSet<&str> = new.lines().filter(|p| !skip(p)).collect();
    (
        new.difference(&old).map(|p| (*p).to_owned()).collect(),
        old.difference(&new).map(|p| (*p).to_owned()).collect(),
    )
}

/// A log's last lines on one line.
pub fn shown(log: &str) -> String {
    match last_lines(log, 4) {
        l if l.is_empty() => "(no output)".to_owned(),
        l => l,
    }
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(13)]
}

/// The server version `ctr version` printed, if it reached the daemon.
pub fn server_version(ctr_version: &str) -> Option<String> {
    let (_, server) = ctr_version.split_once("Server:")?;
    server
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))
        .map(|v| v.trim().to_owned())
}

/// A path in the records, for messages.
pub fn at(records: &Records, name: &str) -> String {
    records.dir.join(name).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cri(steps: Value) -> Cri {
        Cri {
            steps: steps.as_array().unwrap().clone(),
            path: PathBuf::from("test.json"),
        }
    }

    fn call(name: &str, response: Value) -> Value {
        json!({"step": name, "kind": "call", "ok": true, "response": response})
    }

    fn failed(name: &str, code: &str, details: &str) -> Value {
        json!({"step": name, "kind": "call", "ok": false, "code": code, "details": details})
    }

    fn fact(name: &str, value: Value) -> Value {
        json!({"step": name, "kind": "fact", "value": value})
    }

    const UID: &str = "0b6f5a4e-1c2d-4e3f-8a9b-0c1d2e3f4a5b";
    const SLICE: &str = "kubepods-besteffort-pod0b6f5a4e_1c2d_4e3f_8a9b_0c1d2e3f4a5b.slice";

    /// A good `up` record of containerd 2.1, with `change` applied to its steps.
    fn up_record(change: impl Fn(&mut Vec<Value>)) -> Cri {
        let path =
            format!("/kubepods.slice/kubepods-besteffort.slice/{SLICE}/cri-containerd-c1.scope");
        let mut steps = vec![
            fact("served", json!({"seconds": 1.0})),
            call(
                "Version",
                json!({"runtime_api_version": "v1", "runtime_name": "containerd", "runtime_version": "2.1.9"}),
            ),
            call(
                "Status",
                json!({"status": {"conditions": [
                {"type": "RuntimeReady", "status": true, "reason": "", "message": ""},
                {"type": "NetworkReady", "status": true, "reason": "", "message": ""}]}}),
            ),
            call(
                "RuntimeConfig",
                json!({"linux": {"cgroup_driver": "SYSTEMD"}}),
            ),
            call("ImageStatus sandbox before", json!({})),
            call("ImageStatus image before", json!({})),
            fact("pod", json!({"uid": UID, "cgroup_parent": SLICE})),
            call("RunPodSandbox", json!({"pod_sandbox_id": "p1"})),
            call(
                "PodSandboxStatus",
                json!({"status": {"state": "SANDBOX_READY", "network": {"ip": "10.88.0.4"}}}),
            ),
            fact(
                "sandbox container",
                json!({"status": 0, "stdout": "{\"Image\": \"registry.k8s.io/pause:3.10.2\"}", "stderr": ""}),
            ),
            call(
                "ImageStatus sandbox",
                json!({"image": {"id": "sha256:abc", "repo_tags": ["registry.k8s.io/pause:3.10.2"]}}),
            ),
            call("PullImage", json!({"image_ref": "sha256:def"})),
            call(
                "ImageStatus image",
                json!({"image": {"id": "sha256:def", "repo_tags": ["docker.io/library/busybox:vm"]}}),
            ),
            call("CreateContainer", json!({"container_id": "c1"})),
            call("StartContainer", json!({})),
            call(
                "ContainerStatus",
                json!({"status": {"state": "CONTAINER_RUNNING"}}),
            ),
            fact("ContainerStatus pid", json!({"pid": 4242})),
            call("ExecSync", json!({})),
            fact(
                "ExecSync output",
                json!({"exit_code": 0, "stdout": "PING 10.88.0.1 (10.88.0.1): 56 data bytes\n1 packets transmitted, 1 packets received, 0% packet loss\n", "stderr": ""}),
            ),
            fact(
                "cgroup",
                json!({"proc_cgroup": format!("0::{path}\n"), "systemd": {"stdout": format!("Id=cri-containerd-c1.scope\nActiveState=active\nControlGroup={path}\n")}}),
            ),
            fact("done", json!(true)),
        ];
        change(&mut steps);
        cri(Value::Array(steps))
    }

    const E21: Expect = Expect {
        sandbox_image: "registry.k8s.io/pause:3.10.2",
        sandbox_id: "sha256:abc",
        image: "docker.io/library/busybox:vm",
        image_id: "sha256:def",
        containerd: "2.1.9",
    };

    fn replace(steps: &mut [Value], name: &str, with: Value) {
        let at = steps.iter().position(|s| s["step"] == name).unwrap();
        steps[at] = with;
    }

    #[test]
    fn a_good_record_passes_every_check() {
        for o in up(&up_record(|_| {}), &E21) {
            assert!(matches!(o.verdict, Verdict::Pass(_)), "{o}");
        }
    }

    #[test]
    fn the_cgroupfs_driver_fails_runtime_config_and_the_cgroup_check_only() {
        let rec = up_record(|s| {
            replace(
                s,
                "RuntimeConfig",
                call(
                    "RuntimeConfig",
                    json!({"linux": {"cgroup_driver": "CGROUPFS"}}),
                ),
            );
            replace(
                s,
                "cgroup",
                fact(
                    "cgroup",
                    json!({
                "proc_cgroup": format!("0::/system.slice/containerd.service/{SLICE}/c1\n"),
                "systemd": {"stdout": "Id=cri-containerd-c1.scope\nActiveState=inactive\nControlGroup=\n"}}),
                ),
            );
        });
        let found = broken(
            &up(&rec, &E21),
            &[
                (RUNTIME_CONFIG, "CGROUPFS"),
                (CGROUP, "not in cri-containerd-c1.scope"),
            ],
        )
        .unwrap();
        assert!(
            found.contains("/system.slice/containerd.service/"),
            "{found}"
        );
        // The same breakage held to the wrong expectation fails.
        assert!(broken(&up(&rec, &E21), &[(CGROUP, "")]).is_err());
    }

    #[test]
    fn runtime_config_may_be_unimplemented_on_1x_only() {
        let rec = up_record(|s| {
            replace(
                s,
                "RuntimeConfig",
                failed(
                    "RuntimeConfig",
                    "UNIMPLEMENTED",
                    "unknown method RuntimeConfig",
                ),
            )
        });
        let e16 = Expect {
            containerd: "1.6.20",
            ..E21
        };
        assert!(runtime_config(&rec, &e16).is_ok());
        assert!(matches!(runtime_config(&rec, &E21), Err(Verdict::Fail(_))));
        // An empty answer is no answer: the enum's zero is SYSTEMD.
        let empty = up_record(|s| replace(s, "RuntimeConfig", call("RuntimeConfig", json!({}))));
        assert!(matches!(
            runtime_config(&empty, &E21),
            Err(Verdict::Fail(_))
        ));
    }

    #[test]
    fn a_failed_run_pod_sandbox_leaves_the_rest_not_reached() {
        let rec = up_record(|s| {
            let at = s.iter().position(|x| x["step"] == "RunPodSandbox").unwrap();
            s.truncate(at);
            s.push(failed(
                "RunPodSandbox",
                "UNKNOWN",
                "failed to get sandbox image \"registry.k8s.io/pause:3.10.2\": failed to do request: Head \"https://registry.k8s.io/v2/pause/manifests/3.10.2\": dial tcp: lookup registry.k8s.io: no such host",
            ));
            s.push(fact("done", json!(true)));
        });
        let outcomes = up(&rec, &E21);
        broken(&outcomes, &[(RUN_POD, "https://registry.k8s.io/")]).unwrap();
        assert!(matches!(
            outcomes.last().unwrap().verdict,
            Verdict::NotReached(_)
        ));
        assert!(!present_before(&rec, "sandbox").unwrap());
    }

    #[test]
    fn images_must_be_the_ones_made_for_them() {
        // The sandbox ran on some other image of that name.
        let rec = up_record(|s| {
            replace(
                s,
                "ImageStatus sandbox",
                call(
                    "ImageStatus sandbox",
                    json!({"image": {"id": "sha256:999", "repo_tags": ["registry.k8s.io/pause:3.10.2"]}}),
                ),
            )
        });
        assert!(
            matches!(sandbox_image(&rec, &E21), Err(Verdict::Fail(m)) if m.contains("sha256:999"))
        );
        // PullImage answered, but with another image.
        let rec = up_record(|s| {
            replace(
                s,
                "PullImage",
                call("PullImage", json!({"image_ref": "sha256:999"})),
            )
        });
        assert!(matches!(pull_image(&rec, &E21), Err(Verdict::Fail(_))));
        // The image was there before the pod: a pull proves nothing then.
        let rec = up_record(|s| {
            replace(
                s,
                "ImageStatus image before",
                call(
                    "ImageStatus image before",
                    json!({"image": {"id": "sha256:def", "repo_tags": ["docker.io/library/busybox:vm"]}}),
                ),
            )
        });
        assert!(present_before(&rec, "image").unwrap());
        assert!(present_before(
            &up_record(|s| s.retain(|x| x["step"] != "ImageStatus image before")),
            "image"
        )
        .is_err());
    }

    #[test]
    fn not_reached_before_the_expected_failure_is_an_error() {
        let rec = up_record(|s| {
            s.retain(|x| x["step"] != "Status");
            replace(
                s,
                "RuntimeConfig",
                call(
                    "RuntimeConfig",
                    json!({"linux": {"cgroup_driver": "CGROUPFS"}}),
                ),
            );
        });
        assert!(broken(&up(&rec, &E21), &[(RUNTIME_CONFIG, "CGROUPFS")]).is_err());
    }

    #[test]
    fn the_pod_ip_must_be_on_the_bridge() {
        let rec = up_record(|s| {
            replace(
                s,
                "PodSandboxStatus",
                call(
                    "PodSandboxStatus",
                    json!({"status": {"state": "SANDBOX_READY", "network": {"ip": "10.89.0.4"}}}),
                ),
            )
        });
        assert!(matches!(run_pod(&rec, &E21), Err(Verdict::Fail(m)) if m.contains("10.89.0.4")));
    }

    #[test]
    fn a_restart_that_changed_the_pid_is_caught() {
        let up_rec = up_record(|_| {});
        let after = up_record(|s| {
            replace(
                s,
                "ContainerStatus pid",
                fact("ContainerStatus pid", json!({"pid": 5000})),
            )
        });
        assert!(matches!(kept(&up_rec, &after), Err(Verdict::Fail(m)) if m.contains("5000")));
        assert!(kept(&up_rec, &up_record(|_| {})).is_ok());
    }

    #[test]
    fn settings_are_read_in_their_schema_tables() {
        let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"p:1\"\nmax_container_log_line_size = 32768\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = true\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n";
        let d = Dump::parse(v2).unwrap();
        assert_eq!(
            d.get(Setting::SandboxImage).and_then(|v| v.as_str()),
            Some("p:1")
        );
        assert_eq!(
            d.get(Setting::LogLineSize).and_then(|v| v.as_integer()),
            Some(32768)
        );
        assert_eq!(
            d.get(Setting::SystemdCgroup).and_then(|v| v.as_bool()),
            Some(true)
        );
        assert_eq!(
            d.get(Setting::ConfigPath).and_then(|v| v.as_str()),
            Some("/etc/containerd/certs.d")
        );
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.runtime']\nmax_container_log_line_size = 16384\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = '/etc/containerd/certs.d'\n";
        let d = Dump::parse(v3).unwrap();
        assert_eq!(
            d.get(Setting::LogLineSize).and_then(|v| v.as_integer()),
            Some(16384)
        );
        assert!(d.get(Setting::SandboxImage).is_none());
        assert_eq!(
            d.get(Setting::ConfigPath).and_then(|v| v.as_str()),
            Some("/etc/containerd/certs.d")
        );
        assert!(Dump::parse("version = 9")
            .unwrap()
            .get(Setting::SandboxImage)
            .is_none());
    }

    #[test]
    fn tree_changes_skip_volatile_paths_only() {
        let (new, gone) = tree_changes(
            "/\n/etc\n/var/log\n",
            "/\n/etc\n/etc/containerd\n/var/log\n/var/log/x\n/var/logs\n",
            &[("/var/log", true)],
        );
        assert_eq!(new, ["/etc/containerd", "/var/logs"]);
        assert!(gone.is_empty());
    }

    #[test]
    fn the_server_version_needs_the_server_section() {
        assert_eq!(
            server_version("Client:\n  Version: 2.1.9\n\nServer:\n  Version:  2.1.9\n").as_deref(),
            Some("2.1.9")
        );
        assert_eq!(
            server_version("Client:\n  Version: 2.1.9\nctr: failed to dial\n"),
            None
        );
    }
}
