//! `cargo xtask bench`: the speed and memory goals, measured side by side with the anchors
//! (dpkg-deb, xz, reprepro, aptly, apt-ftparchive, or our own cold build) on the same
//! machine in one run, as medians and ratios: every row has an anchor measured in the same
//! run, so a busy machine slows both sides alike. The results go to stdout, `target/bench/bench.json` and
//! `target/bench/bench.svg` (each row's ratio against its goal). Timing is shown here,
//! never asserted in tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use containerd_stack::build::Reuse;
use containerd_stack::deb::compress::Compression;
use containerd_stack::listener::Quiet;
use containerd_stack::{build, BuildOptions, DebArch, Stack};
use serde::Serialize;

use crate::process::{self, require_tool};
use crate::repo_root;
use crate::{product, realbin};

#[derive(Parser)]
pub struct Args {
    /// Runs of each fast row (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Runs of each cold, compression-bound row.
    #[arg(long, default_value_t = 3)]
    cold_runs: usize,
    /// Only the repository rows (no build rows).
    #[arg(long)]
    repo_only: bool,
    /// Keep the work directory (the packages and every tool's repositories) under
    /// target/bench/, to look at or time by hand.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    case: &'static str,
    /// Our median, in seconds (or bytes, or MiB).
    ours: f64,
    unit: &'static str,
    /// The anchor's median, measured in the same run.
    anchor: f64,
    anchor_name: &'static str,
    ratio: f64,
    goal: String,
    /// The goal as a ratio to this run's anchor (for an absolute goal, the limit divided
    /// by the anchor): where bench.svg draws the row's goal line.
    max_ratio: f64,
    met: bool,
    note: String,
}

impl Row {
    /// A goal on the ratio itself: `ours / anchor ≤ max_ratio`.
    fn ratio(
        case: &'static str,
        (ours, anchor): (f64, f64),
        anchor_name: &'static str,
        max_ratio: f64,
        note: String,
    ) -> Row {
        let ratio = ours / anchor;
        Row {
            case,
            ours,
            unit: "s",
            anchor,
            anchor_name,
            ratio,
            goal: format!("≤ {max_ratio:?}×"),
            max_ratio,
            met: ratio <= max_ratio,
            note,
        }
    }

    /// An absolute goal, `ours ≤ max` (in the row's unit), shown against an anchor.
    fn limit(
        case: &'static str,
        (ours, anchor): (f64, f64),
        anchor_name: &'static str,
        max: f64,
        note: String,
    ) -> Row {
        Row {
            case,
            ours,
            unit: "s",
            anchor,
            anchor_name,
            ratio: ours / anchor,
            goal: format!("≤ {max} s"),
            max_ratio: max / anchor,
            met: ours <= max,
            note,
        }
    }

    fn with_note(mut self, note: String) -> Row {
        self.note = note;
        self
    }

    fn in_unit(mut self, unit: &'static str) -> Row {
        if self.goal.ends_with(" s") {
            self.goal = format!("{} {unit}", self.goal.trim_end_matches(" s"));
        }
        self.unit = unit;
        self
    }
}

#[derive(Serialize)]
struct Report {
    cores: usize,
    payload: String,
    rows: Vec<Row>,
}

pub fn run(args: Args) -> Result<()> {
    require_tool("dpkg-deb", "dpkg")?;
    require_tool("xz", "xz-utils")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out_dir = repo_root().join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let work = tempfile::Builder::new()
        .prefix("work-")
        .disable_cleanup(args.keep)
        .tempdir_in(&out_dir)?;
    if args.keep {
        eprintln!("bench: keeping {}", work.path().display());
    }
    eprintln!("bench: {cores} cores; payload: Debian's containerd, runc and CNI plugins (amd64)");
    let mut rows = Vec::new();
    if args.repo_only {
        rows.extend(repo_rows(work.path(), args.runs.max(1), args.keep)?);
        return finish(
            Report {
                cores,
                payload: "1,000 synthetic packages".into(),
                rows,
            },
            &out_dir,
        );
    }
    let release = realbin::prepare(realbin::Source::bookworm(DebArch::Amd64))?;
    let stack = Stack::load(&release.stack)?;
    let mirror = format!("file://{}", release.mirror_root.display());
    let opts = |tag: &str| BuildOptions {
        threads: cores as u32,
        ..BuildOptions::new(
            vec![DebArch::Amd64],
            work.path().join(format!("out-{tag}")),
            Some(mirror.clone()),
            work.path().join(format!("cache-{tag}")),
        )
    };

    // Peak memory of a whole cold build, in a child process that reports its own.
    let mem_out = work.path().join("out-mem");
    let mut child = product::build_deb(
        &release.stack,
        &mirror,
        &work.path().join("cache-mem"),
        &mem_out,
        DebArch::Amd64,
    )?;
    let peak_mib = peak_memory_mib(&mut child)?;
    let flat_row = flat_memory_row(work.path())?;

    // Cold build against dpkg-deb on the very tree we packaged, one after the other in
    // each round, so a machine that slows down during the bench slows both alike.
    let mut ours = Vec::new();
    let mut anchor = Vec::new();
    let mut anchor_peak_mib: f64 = 0.0;
    let mut ours_size = 0;
    let tree = work.path().join("tree");
    let anchor_deb = work.path().join("anchor.deb");
    // The data tar alone, compressed by xz itself with as many threads.
    let data_tar = work.path().join("data.tar");
    let mut xz = Vec::new();
    for i in 0..args.cold_runs.max(1) {
        let o = opts(&format!("cold{i}"));
        let t = Instant::now();
        let built = build(&stack, &o, &Quiet)?.remove(0);
        ours.push(t.elapsed().as_secs_f64());
        ours_size = built.size;
        if i == 0 {
            process::run(
                Command::new("dpkg-deb")
                    .arg("-R")
                    .arg(&built.path)
                    .arg(&tree),
            )?;
            let tar = std::fs::File::create(&data_tar)?;
            let status = Command::new("dpkg-deb")
                .arg("--fsys-tarfile")
                .arg(&built.path)
                .stdout(tar)
                .status()?;
            anyhow::ensure!(status.success(), "dpkg-deb --fsys-tarfile failed");
        }
        let t = Instant::now();
        process::run(
            Command::new("xz")
                .arg(format!("-T{cores}"))
                .args(["-6", "-k", "-f"])
                .arg(&data_tar),
        )?;
        xz.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let peak = run_peak_mib(
            Command::new("dpkg-deb")
                .args(["--build", "-Zxz", "-z6", "--root-owner-group"])
                .arg(&tree)
                .arg(&anchor_deb),
        )?;
        anchor.push(t.elapsed().as_secs_f64());
        anchor_peak_mib = anchor_peak_mib.max(peak);
    }
    let _ = std::fs::remove_file(data_tar.with_extension("tar.xz"));
    let cold = median(&ours);
    let anchor_size = std::fs::metadata(&anchor_deb)?.len();
    let cold_runs = args.cold_runs.max(1);
    rows.push(Row::ratio(
        "cold build, xz -6",
        (cold, median(&anchor)),
        "dpkg-deb --build -Zxz",
        1.0,
        format!("{cold_runs} runs each"),
    ));
    rows.push(Row::ratio(
        "cold build, xz -6, vs xz alone",
        (cold, median(&xz)),
        "xz -6 on the data tar",
        1.0,
        format!("xz -T{cores} -6 with its own 24 MiB blocks, on the uncompressed data member only"),
    ));
    rows.push(
        Row::ratio(
            "package size, xz -6",
            (ours_size as f64, anchor_size as f64),
            "dpkg-deb --build -Zxz",
            1.01,
            format!("{ours_size} vs {anchor_size} bytes"),
        )
        .in_unit("B"),
    );

    // Rebuilds, each against the cold build: nothing changed; a change to the control
    // member only; an edit of templates that land in data.tar; a runc bump.
    let warm = opts("cold0");
    let mut unchanged = Vec::new();
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        let built = build(&stack, &warm, &Quiet)?.remove(0);
        unchanged.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            built.reuse == Reuse::Package,
            "an unchanged rebuild did not reuse the package"
        );
    }
    rows.push(Row::limit(
        "rebuild, nothing changed",
        (median(&unchanged), cold),
        "the cold build",
        1.0,
        "package reused, proven by its sha256".into(),
    ));
    let mut control_only = Vec::new();
    for i in 0..args.runs.max(1) {
        let text = std::fs::read_to_string(&release.stack)?
            .replace("pause:3.10.2", &format!("pause:3.10.{}", 100 + i));
        let changed = Stack::parse(&text, &release.stack)?;
        let t = Instant::now();
        let built = build(&changed, &warm, &Quiet)?.remove(0);
        control_only.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            built.reuse == Reuse::DataMember,
            "a control-only change did not reuse the data member"
        );
    }
    rows.push(Row::limit(
        "rebuild after a control-only change",
        (median(&control_only), cold),
        "the cold build",
        3.0,
        "sandbox image (debconf default): every frame of the data member reused".into(),
    ));
    rows.push(template_edit_row(
        &stack,
        &warm,
        work.path(),
        cold,
        args.runs.max(1),
    )?);
    rows.push(runc_bump_row(
        &release,
        &warm,
        work.path(),
        cold,
        args.runs.max(1),
    )?);

    rows.push(
        Row::limit(
            "peak memory, cold build",
            (peak_mib, anchor_peak_mib),
            "dpkg-deb --build -Zxz",
            300.0,
            "VmHWM of a `build-deb` child; the anchor's is the largest ru_maxrss of its processes"
                .into(),
        )
        .in_unit("MiB"),
    );
    rows.push(flat_row);

    rows.push(timeline_row(&stack, &release.mirror_root, work.path())?);
    rows.extend(repo_rows(work.path(), args.runs.max(1), args.keep)?);

    let report = Report {
        cores,
        payload: format!(
            "{} bytes of programs (Debian's containerd, runc, CNI plugins)",
            dir_size(&tree)
        ),
        rows,
    };
    finish(report, &out_dir)
}

/// Times one rebuild after `what`, which must have reused the cached frames of the parts
/// it did not change; returns its seconds and the bytes of the data tar it compressed.
fn block_rebuild(stack: &Stack, opts: &BuildOptions, what: &str) -> Result<(f64, u64)> {
    let t = Instant::now();
    let built = build(stack, opts, &Quiet)?.remove(0);
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        built.reuse == Reuse::Blocks,
        "{what} was not rebuilt from the cached frames ({:?})",
        built.reuse
    );
    Ok((secs, built.compressed))
}

/// Rebuilds after editing two templates that land in data.tar — the unit and the CNI
/// conflist, through a `--templates` directory, a new edit each run — against the cold
/// build. Only the rendered files' frame is compressed.
fn template_edit_row(
    stack: &Stack,
    warm: &BuildOptions,
    work: &Path,
    cold: f64,
    runs: usize,
) -> Result<Row> {
    let templates = work.join("templates");
    std::fs::create_dir_all(&templates)?;
    let builtin = |name: &str| {
        std::fs::read_to_string(repo_root().join(format!("debian-templates/{name}.hbs")))
            .with_context(|| format!("cannot read the {name} template"))
    };
    let unit = builtin("containerd.service")?;
    let conflist = builtin("10-containerd-net.conflist")?;
    let mut edited = stack.clone();
    edited.package.templates = Some(templates.clone());
    let mut times = Vec::new();
    let mut compressed = 0;
    for i in 0..runs {
        let edit = |text: &str, from: &str, to: String| -> Result<String> {
            anyhow::ensure!(text.contains(from), "no {from:?} in a template to edit");
            Ok(text.replace(from, &to))
        };
        std::fs::write(
            templates.join("containerd.service.hbs"),
            edit(&unit, "RestartSec=5", format!("RestartSec={}", 10 + i))?,
        )?;
        std::fs::write(
            templates.join("10-containerd-net.conflist.hbs"),
            edit(&conflist, "10.88.0.0/16", format!("10.{}.0.0/16", 100 + i))?,
        )?;
        let (secs, bytes) = block_rebuild(&edited, warm, "a template edit")?;
        times.push(secs);
        compressed = bytes;
    }
    Ok(Row::limit(
        "rebuild after editing containerd.service and the CNI conflist",
        (median(&times), cold),
        "the cold build",
        3.0,
        format!(
            "--templates DIR, a new edit each run; {compressed} bytes of the data tar compressed, the rest from the cache"
        ),
    ))
}

/// Rebuilds after a runc-only bump — a new binary under a new version and pin, a new one
/// each run, in a second mirror holding the first one's other assets — against the cold
/// build: the runc and rendered frames are compressed, containerd's and the CNI plugins'
/// come from the cache. The new binaries are Debian's runc with a few bytes appended, which
/// is as much work for the compressor as a real release.
fn runc_bump_row(
    release: &realbin::RealRelease,
    warm: &BuildOptions,
    work: &Path,
    cold: f64,
    runs: usize,
) -> Result<Row> {
    use containerd_stack::stack::ComponentKind;
    let stack = Stack::load(&release.stack)?;
    let root = work.join("mirror-runc-bump");
    copy_tree(&release.mirror_root, &root)?;
    let mut bumped = testkit::FakeRelease {
        root: root.clone(),
        versions: release
            .components
            .iter()
            .map(|c| (c.kind, c.version.clone()))
            .collect(),
        sha256: stack
            .components
            .iter()
            .filter_map(|c| {
                Some((
                    (c.kind, DebArch::Amd64),
                    c.sha256.get(&DebArch::Amd64)?.to_string(),
                ))
            })
            .collect(),
    };
    let kinds: Vec<ComponentKind> = stack.components.iter().map(|c| c.kind).collect();
    let runc = std::fs::read(
        release.mirror_root.join(
            bumped
                .artifact(ComponentKind::Runc, DebArch::Amd64, "0".repeat(64))
                .path,
        ),
    )?;
    let mirror = format!("file://{}", root.display());
    let opts = BuildOptions {
        fetch: containerd_stack::fetch::FetchOptions {
            mirror: Some(mirror),
            ..warm.fetch.clone()
        },
        ..warm.clone()
    };
    let base = &release.component(ComponentKind::Runc).version;
    let (minor, patch) = base
        .rsplit_once('.')
        .context("runc's version has no patch level")?;
    let patch: u32 = patch
        .parse()
        .context("runc's patch level is not a number")?;
    let mut times = Vec::new();
    let mut compressed = 0;
    for i in 0..runs {
        let version = format!("{minor}.{}", patch + 1 + i as u32);
        let mut binary = runc.clone();
        binary.extend_from_slice(format!("\0bench: runc {version}\n").as_bytes());
        bumped.versions.insert(ComponentKind::Runc, version);
        bumped.put(ComponentKind::Runc, DebArch::Amd64, &binary);
        let stack = Stack::parse(&bumped.stack_toml(&kinds), &release.stack)?;
        let (secs, bytes) = block_rebuild(&stack, &opts, "a runc bump")?;
        times.push(secs);
        compressed = bytes;
    }
    Ok(Row::ratio(
        "rebuild after a runc-only bump",
        (median(&times), cold),
        "the cold build",
        0.3,
        format!(
            "new binary ({} bytes), version and pin each run; {compressed} bytes of the data tar compressed, the rest from the cache",
            runc.len()
        ),
    ))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

/// Peak memory of cold xz builds of two generated payloads, the second four times the
/// first: memory is flat in the payload's size when the larger build needs at most 10%
/// more. Each program is padded with a repeated pseudo-random MiB, which xz compresses
/// quickly; its encoder's memory does not depend on the content.
fn flat_memory_row(work: &Path) -> Result<Row> {
    use containerd_stack::stack::ComponentKind;
    use testkit::upstream::{containerd_tar_gz, elf_program};
    let mut block = vec![0u8; 1 << 20];
    fill_pseudo_random(&mut block, &mut 0x2545_f491_4f6c_dd1d);
    let mut peaks = Vec::new();
    for (tag, payload_mib) in [("small", 40), ("large", 160)] {
        let dir = work.join(format!("payload-{tag}"));
        let mut release = testkit::FakeRelease::write(&dir.join("mirror"), &[DebArch::Amd64]);
        let program = |name: &str| {
            let mut bytes = elf_program(DebArch::Amd64, name);
            for _ in 0..payload_mib / 4 {
                bytes.extend_from_slice(&block);
            }
            bytes
        };
        let containerd = containerd_tar_gz(program);
        release.put(ComponentKind::Containerd, DebArch::Amd64, &containerd);
        let stack = dir.join("stack.toml");
        std::fs::write(&stack, release.stack_toml(&ComponentKind::ALL))?;
        let mut child = product::build_deb(
            &stack,
            &format!("file://{}", release.root.display()),
            &dir.join("cache"),
            &dir.join("out"),
            DebArch::Amd64,
        )?;
        peaks.push(peak_memory_mib(&mut child).with_context(|| format!("the {tag} payload"))?);
    }
    Ok(Row::ratio(
        "peak memory, 4× the payload",
        (peaks[1], peaks[0]),
        "the same build of a 4× smaller payload",
        1.1,
        "generated programs, 160 vs 40 MiB, xz -6; VmHWM of each `build-deb` child".into(),
    )
    .in_unit("MiB"))
}

/// Each connection of the timeline row's mirror is held to this, like a real link.
const LINK_BYTES_PER_SECOND: u64 = 16 << 20;

/// A cold build from an empty cache through a loopback HTTP mirror whose connections are
/// throttled like a real link, recording when every download and stage begins and ends. It
/// is met when all downloads run side by side and no stage waits longer than
/// [`MAX_WAIT`] once what it needs is ready: an asset's unpacking for its own download,
/// its checks for its unpacking, compression for the last check. zstd -3 keeps the
/// compression short so the overlap is what the wall time shows.
fn timeline_row(stack: &Stack, mirror_root: &Path, work: &Path) -> Result<Row> {
    use containerd_stack::listener::{Event, Stage};
    const MAX_WAIT: f64 = 0.05;
    let mirror = testkit::mirror::Mirror::serve(mirror_root);
    mirror.throttle(LINK_BYTES_PER_SECOND);
    let opts = BuildOptions {
        compression: Compression::Zstd,
        level: 3,
        ..BuildOptions::new(
            vec![DebArch::Amd64],
            work.join("out-timeline"),
            Some(mirror.url()),
            work.join("cache-timeline"),
        )
    };
    let timeline = Timeline::new();
    build(stack, &opts, &timeline)?;
    let wall = timeline.start.elapsed().as_secs_f64();
    let events = timeline.events.into_inner().expect("no thread panicked");

    let at = |want: &dyn Fn(&Event) -> bool| -> Result<f64> {
        events
            .iter()
            .find(|(_, e)| want(e))
            .map(|(t, _)| *t)
            .with_context(|| "the build did not report every step".to_string())
    };
    let stage = |stage: Stage, name: &str, done: bool| {
        at(&|e: &Event| match e {
            Event::Began { stage: s, name: n } if !done => *s == stage && n == name,
            Event::Ended { stage: s, name: n } if done => *s == stage && n == name,
            _ => false,
        })
    };
    let assets: Vec<String> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::DownloadStarted { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    let package = events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Began {
                stage: Stage::Compress,
                name,
            } => Some(name.clone()),
            _ => None,
        })
        .context("the build did not compress anything")?;

    let mut serial = 0.0;
    let mut waits = Vec::new();
    let mut first_finish = f64::MAX;
    let mut last_start: f64 = 0.0;
    let mut last_check: f64 = 0.0;
    let mut last_finish: f64 = 0.0;
    let mut unpack_ends = Vec::new();
    for name in &assets {
        let started =
            at(&|e: &Event| matches!(e, Event::DownloadStarted { name: n, .. } if n == name))?;
        let finished =
            at(&|e: &Event| matches!(e, Event::DownloadFinished { name: n } if n == name))?;
        let unpack = (
            stage(Stage::Unpack, name, false)?,
            stage(Stage::Unpack, name, true)?,
        );
        let check = (
            stage(Stage::Check, name, false)?,
            stage(Stage::Check, name, true)?,
        );
        first_finish = first_finish.min(finished);
        last_finish = last_finish.max(finished);
        unpack_ends.push(unpack.1);
        last_start = last_start.max(started);
        last_check = last_check.max(check.1);
        serial += (finished - started) + (unpack.1 - unpack.0) + (check.1 - check.0);
        waits.push((format!("unpacking {name}"), unpack.0 - finished));
        waits.push((format!("checking {name}"), check.0 - unpack.1));
    }
    let compress = (
        stage(Stage::Compress, &package, false)?,
        stage(Stage::Compress, &package, true)?,
    );
    serial += compress.1 - compress.0;
    waits.push(("compressing".into(), compress.0 - last_check));
    let (worst, wait) = waits
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .context("no stage ran")?;
    let side_by_side = last_start < first_finish;
    let overlapped = unpack_ends.iter().filter(|&&t| t < last_finish).count();
    Ok(Row {
        goal: "overlap, no wait".into(),
        met: assets.len() >= 3 && side_by_side && overlapped > 0 && wait <= MAX_WAIT,
        ..Row::ratio(
            "cold build, empty cache, HTTP mirror",
            (wall, serial),
            "its steps one after another",
            1.0,
            String::new(),
        )
    }
    .with_note(format!(
            "{} downloads at {} MiB/s each, {}; {overlapped} unpacked and checked while another was still downloading; zstd -3; longest wait: {worst}, {:.0} ms after its input was ready",
            assets.len(),
            LINK_BYTES_PER_SECOND >> 20,
            if side_by_side { "all started before the first finished" } else { "NOT side by side" },
            wait * 1000.0
        )))
}

/// Every event of a build with the seconds since the timeline was made.
struct Timeline {
    start: Instant,
    events: std::sync::Mutex<Vec<(f64, containerd_stack::listener::Event)>>,
}

impl Timeline {
    fn new() -> Timeline {
        Timeline {
            start: Instant::now(),
            events: Default::default(),
        }
    }
}

impl containerd_stack::listener::Listener for Timeline {
    fn event(&self, event: containerd_stack::listener::Event) {
        let t = self.start.elapsed().as_secs_f64();
        self.events.lock().unwrap().push((t, event));
    }
}

fn finish(report: Report, out_dir: &Path) -> Result<()> {
    print_table(&report);
    std::fs::write(
        out_dir.join("bench.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(out_dir.join("bench.svg"), svg(&report))?;
    eprintln!(
        "wrote {} and bench.svg",
        out_dir.join("bench.json").display()
    );
    Ok(())
}

/// The tools a user would pick instead of `repo publish`, each run on the same packages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    Reprepro,
    Aptly,
    Ftparchive,
}

impl Peer {
    const ALL: [Peer; 3] = [Peer::Reprepro, Peer::Aptly, Peer::Ftparchive];

    fn name(self) -> &'static str {
        match self {
            Peer::Reprepro => "reprepro includedeb",
            Peer::Aptly => "aptly repo add + publish",
            Peer::Ftparchive => "apt-ftparchive packages + release",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Peer::Reprepro => "reprepro",
            Peer::Aptly => "aptly",
            Peer::Ftparchive => "ftparchive",
        }
    }

    /// Fails naming the package when the tool is not installed.
    fn require(self) -> Result<()> {
        let tools: &[(&str, &str)] = match self {
            Peer::Reprepro => &[("reprepro", "reprepro")],
            Peer::Aptly => &[("aptly", "aptly")],
            Peer::Ftparchive => &[
                ("apt-ftparchive", "apt-utils"),
                ("gzip", "gzip"),
                ("xz", "xz-utils"),
            ],
        };
        for (program, package) in tools {
            require_tool(program, package)?;
        }
        require_tool("gpg", "gnupg")?;
        Ok(())
    }

    /// Makes an empty repository at `dir` and adds `debs` to it, signed by `key`.
    fn cold(self, dir: &Path, debs: &Path, key: &PeerKey) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        match self {
            Peer::Reprepro => {
                std::fs::create_dir_all(dir.join("conf"))?;
                std::fs::write(
                    dir.join("conf/distributions"),
                    format!(
                        "Origin: bench\nLabel: bench\nSuite: stable\nCodename: stable\nArchitectures: amd64\nComponents: main\nDebIndices: Packages Release . .gz .xz\nSignWith: {}\n",
                        key.fingerprint
                    ),
                )?;
                let mut cmd = key.command("reprepro");
                cmd.arg("-b").arg(dir).args(["includedeb", "stable"]);
                cmd.args(deb_files(debs)?);
                process::run(&mut cmd)?;
            }
            Peer::Aptly => {
                std::fs::write(
                    dir.join("aptly.conf"),
                    serde_json::to_string(&serde_json::json!({
                        "rootDir": dir.join("root"),
                        "architectures": ["amd64"],
                        "gpgProvider": "gpg",
                    }))?,
                )?;
                self.aptly(
                    dir,
                    key,
                    &[
                        "repo",
                        "create",
                        "-distribution=stable",
                        "-component=main",
                        "bench",
                    ],
                    None,
                )?;
                self.aptly(dir, key, &["repo", "add", "bench"], Some(debs))?;
                let signing = format!("-gpg-key={}", key.fingerprint);
                self.aptly(
                    dir,
                    key,
                    &["publish", "repo", "-batch", &signing, "bench"],
                    None,
                )?;
            }
            Peer::Ftparchive => {
                let script = format!(
                    "mkdir -p pool/main dists/stable/main/binary-amd64\ncp {debs}/*.deb pool/main/\n{}",
                    FTPARCHIVE_INDEX,
                    debs = sh_quote(debs),
                );
                key.script(dir, &script)?;
            }
        }
        Ok(())
    }

    /// Adds `deb` to the repository `cold` made and publishes it again.
    fn add(self, dir: &Path, deb: &Path, key: &PeerKey) -> Result<()> {
        match self {
            Peer::Reprepro => {
                process::run(
                    key.command("reprepro")
                        .arg("-b")
                        .arg(dir)
                        .args(["includedeb", "stable"])
                        .arg(deb),
                )?;
            }
            Peer::Aptly => {
                self.aptly(dir, key, &["repo", "add", "bench"], Some(deb))?;
                let signing = format!("-gpg-key={}", key.fingerprint);
                self.aptly(
                    dir,
                    key,
                    &["publish", "update", "-batch", &signing, "stable"],
                    None,
                )?;
            }
            Peer::Ftparchive => {
                let script = format!("cp {} pool/main/\n{}", sh_quote(deb), FTPARCHIVE_INDEX);
                key.script(dir, &script)?;
            }
        }
        Ok(())
    }

    fn aptly(self, dir: &Path, key: &PeerKey, args: &[&str], path: Option<&Path>) -> Result<()> {
        let mut cmd = key.command("aptly");
        cmd.arg(format!("-config={}", dir.join("aptly.conf").display()))
            .args(args);
        if let Some(p) = path {
            cmd.arg(p);
        }
        process::run(&mut cmd)?;
        Ok(())
    }

    /// The signed `InRelease` the tool wrote, to check that it did sign.
    fn in_release(self, dir: &Path) -> PathBuf {
        match self {
            Peer::Reprepro => dir.join("dists/stable/InRelease"),
            Peer::Aptly => dir.join("root/public/dists/stable/InRelease"),
            Peer::Ftparchive => dir.join("dists/stable/InRelease"),
        }
    }
}

/// apt-ftparchive's part of a publish, as its manual shows it: the index from the pool
/// (with its cache of each package's control and hashes, so a second run reopens none),
/// compressed as ours is (gzip -9, xz -1), the Release over it, signed twice by gpg.
const FTPARCHIVE_INDEX: &str = r#"set -e
d=dists/stable/main/binary-amd64
apt-ftparchive --db cache.db packages pool > $d/Packages
gzip -9 -n -k -f $d/Packages
xz -1 -k -f $d/Packages
apt-ftparchive -o APT::FTPArchive::Release::Origin=bench -o APT::FTPArchive::Release::Label=bench -o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename=stable -o APT::FTPArchive::Release::Architectures=amd64 -o APT::FTPArchive::Release::Components=main release dists/stable > Release.new
mv Release.new dists/stable/Release
gpg --batch --yes -u "$KEY" --clearsign -o dists/stable/InRelease dists/stable/Release
gpg --batch --yes -u "$KEY" -abs -o dists/stable/Release.gpg dists/stable/Release
"#;

/// Our signing key, imported into a GnuPG home of its own for the peers: every tool signs
/// with the same Ed25519 key.
struct PeerKey {
    home: PathBuf,
    fingerprint: String,
}

impl PeerKey {
    fn import(home: &Path, secret_armored: &str, fingerprint: String) -> Result<PeerKey> {
        std::fs::create_dir_all(home)?;
        std::fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let key_file = home.join("secret.asc");
        std::fs::write(&key_file, secret_armored)?;
        let key = PeerKey {
            home: home.to_owned(),
            fingerprint,
        };
        process::run(
            key.command("gpg")
                .args(["--batch", "--import"])
                .arg(&key_file),
        )?;
        Ok(key)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("GNUPGHOME", &self.home)
            .env("KEY", &self.fingerprint)
            .stdin(std::process::Stdio::null());
        cmd
    }

    fn script(&self, dir: &Path, script: &str) -> Result<()> {
        process::run(self.command("sh").arg("-ec").arg(script).current_dir(dir))?;
        Ok(())
    }
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// The `.deb` files in `dir`, sorted.
fn deb_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    out.retain(|p| p.extension().is_some_and(|e| e == "deb"));
    out.sort();
    Ok(out)
}

/// Publishing, side by side with the tools a user would pick instead, on the same 1,000
/// packages: into an empty repository (cold), then one more package into it (add-one).
/// Every tool signs with the same key and writes Packages, .gz and .xz (aptly: .gz and
/// .bz2, which it always makes) and copies the packages into its pool.
fn repo_rows(work: &Path, runs: usize, keep: bool) -> Result<Vec<Row>> {
    use containerd_stack::repo::{publish, PublishOptions};
    for peer in Peer::ALL {
        peer.require()?;
    }
    let debs_dir = work.join("debs");
    let extra_dir = work.join("extra");
    std::fs::create_dir_all(&debs_dir)?;
    std::fs::create_dir_all(&extra_dir)?;
    let thousand = synthetic_debs(&debs_dir, 0..1000)?;
    let extra = synthetic_debs(&extra_dir, 1000..1001)?;
    let (key, signer) = testkit::openpgp::signer("bench <bench@example.org>", 1_700_000_000);
    let peer_key = PeerKey::import(
        &work.join("gnupg"),
        &key.secret_armored,
        signer.fingerprint(),
    )?;
    let now = || crate::now();

    let mut ours_cold = Vec::new();
    let mut ours_add = Vec::new();
    let mut peer_cold = vec![Vec::new(); Peer::ALL.len()];
    let mut peer_add = vec![Vec::new(); Peer::ALL.len()];
    for i in 0..runs {
        // Each tool reads the same files right after the others, in an order that turns
        // each round. Each timed step starts with nothing dirty: a publish ends with a
        // syncfs, which would also pay for whatever earlier steps left unwritten.
        let round = work.join(format!("round{i}"));
        let repo = round.join("ours");
        for turn in 0..=Peer::ALL.len() {
            match (turn + i) % (Peer::ALL.len() + 1) {
                0 => {
                    flush_filesystems();
                    let t = Instant::now();
                    publish(
                        &repo,
                        &thousand,
                        &[&signer],
                        &PublishOptions::new(now()),
                        &Quiet,
                    )?;
                    ours_cold.push(t.elapsed().as_secs_f64());
                    // The next publish's Date must be later than this one's: start it in a
                    // new second, so that it does not wait for one.
                    std::thread::sleep(std::time::Duration::from_millis(1100));
                    flush_filesystems();
                    let t = Instant::now();
                    publish(
                        &repo,
                        &extra,
                        &[&signer],
                        &PublishOptions::new(now()),
                        &Quiet,
                    )?;
                    ours_add.push(t.elapsed().as_secs_f64());
                }
                n => {
                    let peer = Peer::ALL[n - 1];
                    let dir = round.join(peer.dir());
                    flush_filesystems();
                    let t = Instant::now();
                    peer.cold(&dir, &debs_dir, &peer_key)?;
                    peer_cold[n - 1].push(t.elapsed().as_secs_f64());
                    std::thread::sleep(std::time::Duration::from_millis(1100));
                    flush_filesystems();
                    let t = Instant::now();
                    peer.add(&dir, &extra[0], &peer_key)?;
                    peer_add[n - 1].push(t.elapsed().as_secs_f64());
                    let signed = std::fs::read_to_string(peer.in_release(&dir))
                        .with_context(|| format!("{} wrote no InRelease", peer.name()))?;
                    anyhow::ensure!(
                        signed.starts_with("-----BEGIN PGP SIGNED MESSAGE-----"),
                        "{}: InRelease is not signed",
                        peer.name()
                    );
                }
            }
        }
        if !keep {
            let _ = std::fs::remove_dir_all(&round);
        }
    }
    let total: u64 = thousand
        .iter()
        .map(|d| std::fs::metadata(d).map_or(0, |m| m.len()))
        .sum();
    let mut rows = Vec::new();
    for (n, peer) in Peer::ALL.into_iter().enumerate() {
        rows.push(Row::ratio(
            "repo publish, 1,000 debs, cold",
            (median(&ours_cold), median(&peer_cold[n])),
            peer.name(),
            1.0,
            format!(
                "{} MB of packages; {runs} runs each; all sign with one Ed25519 key and copy into a pool; ours also writes by-hash copies and index.html, and fsyncs",
                total / 1_000_000
            ),
        ));
    }
    for (n, peer) in Peer::ALL.into_iter().enumerate() {
        rows.push(Row::ratio(
            "add 1 deb to a 1,000-deb repo, signed",
            (median(&ours_add), median(&peer_add[n])),
            peer.name(),
            1.0,
            format!("{runs} runs each; ours reads its indexes back, reopens no package"),
        ));
    }
    let ftparchive = Peer::ALL.len() - 1;
    rows.push(Row::limit(
        "add 1 deb to a 1,000-deb repo, signed, absolute",
        (median(&ours_add), median(&peer_cold[ftparchive])),
        "apt-ftparchive over the 1,000, cold",
        0.2,
        "indexes read from the repository, no package reopened".into(),
    ));
    Ok(rows)
}

/// Small packages of about 200 KB each (incompressible payload), one for each `i` of
/// `range`, each a package of its own (`bench-<i>`: reprepro keeps one version of a
/// package in a suite).
fn synthetic_debs(dir: &Path, range: std::ops::Range<usize>) -> Result<Vec<PathBuf>> {
    use containerd_stack::deb::{ControlFiles, DebWriter};
    use containerd_stack::layout::FhsTree;
    let writer = DebWriter {
        compression: Compression::Gzip,
        level: 1,
        threads: 1,
        mtime: 1_700_000_000,
    };
    let mut out = Vec::with_capacity(range.len());
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ range.start as u64;
    for i in range {
        let mut payload = vec![0u8; 200 * 1024];
        fill_pseudo_random(&mut payload, &mut seed);
        let mut tree = FhsTree::default();
        tree.add_inline("usr/share/bench/payload", 0o644, payload)?;
        let control = format!(
            "Package: bench-{i:04}\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: bench <bench@example.org>\nInstalled-Size: 204\nSection: admin\nPriority: optional\nDescription: bench package\n synthetic payload for cargo xtask bench\n"
        );
        let path = dir.join(format!("bench-{i:04}_1.0-1_amd64.deb"));
        let data = writer.write_data(&tree)?;
        let control_member = writer.write_control(
            &ControlFiles {
                control: &control,
                conffiles: &[],
                scripts: &[],
                extra: &[],
            },
            &tree.md5sums(),
        )?;
        let file = std::fs::File::create(&path)?;
        writer.assemble(
            &control_member,
            &data,
            None,
            std::io::BufWriter::new(file),
            &path,
        )?;
        out.push(path);
    }
    Ok(out)
}

/// Fills `buf` from an xorshift64 generator, advancing `seed`: incompressible bytes, the
/// same on every run.
fn fill_pseudo_random(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn print_table(r: &Report) {
    println!("machine: {} cores; payload: {}", r.cores, r.payload);
    println!(
        "{:<62} {:>12} {:>12} {:>7} {:>8}  {:<16} met",
        "case", "ours", "anchor", "ratio", "goal ×", "goal"
    );
    for row in &r.rows {
        let fmt = |v: f64| match row.unit {
            "s" => format!("{v:.3} s"),
            "B" => format!("{v:.0} B"),
            u => format!("{v:.1} {u}"),
        };
        println!(
            "{:<62} {:>12} {:>12} {:>7.3} {:>8.3}  {:<16} {}",
            row.case,
            fmt(row.ours),
            fmt(row.anchor),
            row.ratio,
            row.max_ratio,
            row.goal,
            if row.met { "yes" } else { "NO" }
        );
        println!("    anchor: {}; {}", row.anchor_name, row.note);
    }
}

/// One bar per row: its ratio to its anchor on a log scale, with a tick at the row's goal
/// (the goal's ratio to this run's anchor).
fn svg(r: &Report) -> String {
    const LEFT: f64 = 420.0;
    const WIDTH: f64 = 480.0;
    // Ratios from 1/1000 to 10: nothing-changed rebuilds are a few thousandths of a cold
    // build, the cold build itself about 1.
    let (lo, hi) = (1e-3f64.log10(), 10f64.log10());
    let x = |ratio: f64| LEFT + (ratio.clamp(1e-3, 10.0).log10() - lo) / (hi - lo) * WIDTH;
    let h = 44 * r.rows.len() + 80;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<text x="10" y="20">containerd-stack bench — {} cores; bar = ours / anchor (log scale), tick = goal</text>
"#,
        r.cores,
        w = LEFT + WIDTH + 140.0,
    );
    for tick in [0.001, 0.01, 0.1, 1.0, 10.0] {
        s.push_str(&format!(
            r##"<line x1="{x:.1}" y1="32" x2="{x:.1}" y2="{y2}" stroke="#ddd"/><text x="{x:.1}" y="{ty}" text-anchor="middle" fill="#777">{tick}×</text>
"##,
            x = x(tick),
            y2 = h - 30,
            ty = h - 16,
        ));
    }
    for (i, row) in r.rows.iter().enumerate() {
        let y = 40 + i * 44;
        let color = if row.met { "#4a4" } else { "#c44" };
        let end = x(row.ratio);
        let goal = x(row.max_ratio);
        s.push_str(&format!(
            r##"<text x="10" y="{ty}">{case}</text><text x="10" y="{ty2}" fill="#777" font-size="10">vs {anchor}</text>
<rect x="{LEFT}" y="{y}" width="{bw:.1}" height="18" fill="{color}"/><line x1="{goal:.1}" y1="{gy1}" x2="{goal:.1}" y2="{gy2}" stroke="black" stroke-width="2"/>
<text x="{tx:.1}" y="{ty}">{ratio:.3}× (goal {g})</text>
"##,
            ty = y + 13,
            ty2 = y + 27,
            case = xml(row.case),
            anchor = xml(row.anchor_name),
            bw = end - LEFT,
            gy1 = y - 3,
            gy2 = y + 21,
            tx = end.max(goal) + 6.0,
            ratio = row.ratio,
            g = match row.goal.ends_with('×') || row.goal.starts_with("overlap") {
                true => xml(&row.goal),
                false => format!("{}, {:.3}×", xml(&row.goal), row.max_ratio),
            },
        ));
    }
    s.push_str("</svg>\n");
    s
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes every dirty page out, so a timed step does not pay for earlier ones.
fn flush_filesystems() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() }
}

/// Runs a `build-deb` command with `--verbose` and returns the peak resident memory it
/// reports for itself (its `VmHWM`).
fn peak_memory_mib(build_deb: &mut Command) -> Result<f64> {
    let out = build_deb
        .arg("--verbose")
        .stdout(std::process::Stdio::null())
        .output()
        .context("cannot run build-deb")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        out.status.success(),
        "build-deb failed: {}",
        stderr.lines().last().unwrap_or("")
    );
    let mib = stderr
        .lines()
        .find_map(|l| l.split_once(containerd_stack::listener::PEAK_MEMORY))
        .and_then(|(_, v)| v.trim_end_matches(" MiB").parse().ok())
        .context("build-deb --verbose did not report its peak memory")?;
    Ok(mib)
}

/// Runs `cmd` and returns the peak resident memory of its largest process, in MiB (what
/// wait4(2) reports: the child's, or a waited-for descendant's, whichever is larger).
fn run_peak_mib(cmd: &mut Command) -> Result<f64> {
    let child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let mut status = 0;
    // SAFETY: all-zero is a valid rusage, which wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` is our own unreaped child; status and usage are valid for writing.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    anyhow::ensure!(pid > 0, "wait4: {}", std::io::Error::last_os_error());
    anyhow::ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed ({status})"
    );
    Ok(usage.ru_maxrss as f64 / 1024.0)
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let m = e
                .metadata()
                .map(|m| (m.is_dir(), m.len()))
                .unwrap_or((false, 0));
            total += if m.0 { dir_size(&e.path()) } else { m.1 };
        }
    }
    total
}
