//! `cargo xtask bench`: the speed and memory goals, measured side by side with the anchors
//! (dpkg-deb, apt-ftparchive) on the same machine in one run, as medians and ratios. The
//! results go to stdout, `target/bench/bench.json` and `target/bench/bench.svg`. Timing is
//! shown here, never asserted in tests.

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
}

#[derive(Debug, Serialize)]
struct Row {
    case: &'static str,
    /// Our median, in seconds (or MiB for memory rows).
    ours: f64,
    unit: &'static str,
    /// The anchor's median, when the goal is a ratio.
    anchor: Option<f64>,
    anchor_name: Option<&'static str>,
    ratio: Option<f64>,
    goal: &'static str,
    met: bool,
    note: String,
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
    let work = tempfile::tempdir_in(&out_dir)?;
    eprintln!("bench: {cores} cores; payload: Debian's containerd, runc and CNI plugins (amd64)");
    let mut rows = Vec::new();
    if args.repo_only {
        rows.extend(repo_rows(work.path(), args.runs.max(1))?);
        return finish(
            Report {
                cores,
                payload: "1,000 synthetic packages".into(),
                rows,
            },
            &out_dir,
        );
    }
    let release = realbin::prepare(DebArch::Amd64)?;
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
    let mut memory_row = limit_row(
        "peak memory, cold build",
        peak_mib,
        300.0,
        "≤ 300 MiB",
        "VmHWM of a `build-deb` child process",
    );
    memory_row.unit = "MiB";
    let flat_row = flat_memory_row(work.path())?;

    // Cold build against dpkg-deb on the very tree we packaged, one after the other in
    // each round, so a machine that slows down during the bench slows both alike.
    let mut ours = Vec::new();
    let mut anchor = Vec::new();
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
        process::run(
            Command::new("dpkg-deb")
                .args(["--build", "-Zxz", "-z6", "--root-owner-group"])
                .arg(&tree)
                .arg(&anchor_deb),
        )?;
        anchor.push(t.elapsed().as_secs_f64());
    }
    let anchor_size = std::fs::metadata(&anchor_deb)?.len();
    rows.push(ratio_row(
        "cold build, xz -6",
        median(&ours),
        median(&anchor),
        "dpkg-deb --build -Zxz",
        1.0,
        "wall ≤ 1.0×",
        format!("{} runs each", args.cold_runs.max(1)),
    ));
    rows.push(ratio_row(
        "cold build, xz -6, vs xz alone",
        median(&ours),
        median(&xz),
        "xz -6 on the data tar",
        1.0,
        "wall ≤ 1.0×",
        format!("xz -T{cores} -6 with its own 24 MiB blocks, on the uncompressed data member only"),
    ));
    rows.push(ratio_row(
        "package size, xz -6",
        ours_size as f64,
        anchor_size as f64,
        "dpkg-deb --build -Zxz",
        1.01,
        "≤ 1.01×",
        format!("{ours_size} vs {anchor_size} bytes"),
    ));

    // Rebuilds: nothing changed, then a change that only touches the control member.
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
    rows.push(limit_row(
        "rebuild, nothing changed",
        median(&unchanged),
        1.0,
        "≤ 1 s",
        "package reused, proven by its sha256",
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
    rows.push(limit_row(
        "rebuild after a template/control change",
        median(&control_only),
        3.0,
        "≤ 3 s",
        "data member reused; control rebuilt",
    ));

    rows.push(memory_row);
    rows.push(flat_row);

    rows.push(timeline_row(&stack, &release.mirror_root, work.path())?);
    rows.extend(repo_rows(work.path(), args.runs.max(1))?);

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
    let ratio = peaks[1] / peaks[0];
    Ok(Row {
        case: "peak memory, 4× the payload",
        ours: peaks[1],
        unit: "MiB",
        anchor: Some(peaks[0]),
        anchor_name: Some("the same build of a 4× smaller payload"),
        ratio: Some(ratio),
        goal: "≤ 1.1× (flat)",
        met: ratio <= 1.1,
        note: "generated programs, 160 vs 40 MiB, xz -6; VmHWM of each `build-deb` child".into(),
    })
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
        case: "cold build, empty cache, HTTP mirror",
        ours: wall,
        unit: "s",
        anchor: Some(serial),
        anchor_name: Some("its steps one after another"),
        ratio: Some(wall / serial),
        goal: "overlap, no wait",
        met: assets.len() >= 3 && side_by_side && overlapped > 0 && wait <= MAX_WAIT,
        note: format!(
            "{} downloads at {} MiB/s each, {}; {overlapped} unpacked and checked while another was still downloading; zstd -3; longest wait: {worst}, {:.0} ms after its input was ready",
            assets.len(),
            LINK_BYTES_PER_SECOND >> 20,
            if side_by_side { "all started before the first finished" } else { "NOT side by side" },
            wait * 1000.0
        ),
    })
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

/// Publishing: 1,000 packages into an empty repository against `apt-ftparchive packages`
/// over the same files, then one more package into that repository, signing included.
fn repo_rows(work: &Path, runs: usize) -> Result<Vec<Row>> {
    use containerd_stack::repo::{publish, PublishOptions};
    require_tool("apt-ftparchive", "apt-utils")?;
    let debs_dir = work.join("debs");
    std::fs::create_dir_all(&debs_dir)?;
    let debs = synthetic_debs(&debs_dir, 1001)?;
    let (thousand, extra) = debs.split_at(1000);
    let (_, signer) = testkit::openpgp::signer("bench <bench@example.org>", 1_700_000_000);
    let now = || crate::now();

    let mut anchor = Vec::new();
    let mut cold = Vec::new();
    let mut add = Vec::new();
    for i in 0..runs.min(3) {
        // Drop the page cache's advantage between tools as far as we can: each reads the
        // same files right after the other, in alternating order. A publish ends with a
        // syncfs, which would also pay for whatever earlier rows left unwritten: each
        // timed step starts with nothing dirty.
        flush_filesystems();
        let t = Instant::now();
        process::run(
            Command::new("apt-ftparchive")
                .arg("packages")
                .arg(&debs_dir)
                .stdout(std::process::Stdio::null()),
        )?;
        anchor.push(t.elapsed().as_secs_f64());
        let repo = work.join(format!("repo{i}"));
        flush_filesystems();
        let t = Instant::now();
        publish(
            &repo,
            thousand,
            &[&signer],
            &PublishOptions::new(now()),
            &Quiet,
        )?;
        cold.push(t.elapsed().as_secs_f64());
        // The next publish's Date must be later than this one's: start it in a new second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        flush_filesystems();
        let t = Instant::now();
        publish(
            &repo,
            extra,
            &[&signer],
            &PublishOptions::new(now()),
            &Quiet,
        )?;
        add.push(t.elapsed().as_secs_f64());
    }
    let total: u64 = thousand
        .iter()
        .map(|d| std::fs::metadata(d).map_or(0, |m| m.len()))
        .sum();
    Ok(vec![
        ratio_row(
            "repo publish, 1,000 debs, cold",
            median(&cold),
            median(&anchor),
            "apt-ftparchive packages",
            1.0,
            "wall ≤ 1.0×",
            format!(
                "{} MB of packages; ours also copies them into the pool and signs",
                total / 1_000_000
            ),
        ),
        limit_row(
            "add 1 deb to a 1,000-deb repo, signed",
            median(&add),
            0.2,
            "≤ 0.2 s",
            "indexes read from the repository, no package reopened",
        ),
    ])
}

/// `n` small packages of about 200 KB each (incompressible payload), versions 1.0.i-1.
fn synthetic_debs(dir: &Path, n: usize) -> Result<Vec<PathBuf>> {
    use containerd_stack::deb::{ControlFiles, DebWriter};
    use containerd_stack::layout::FhsTree;
    let writer = DebWriter {
        compression: Compression::Gzip,
        level: 1,
        threads: 1,
        mtime: 1_700_000_000,
    };
    let mut out = Vec::with_capacity(n);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        let mut payload = vec![0u8; 200 * 1024];
        fill_pseudo_random(&mut payload, &mut seed);
        let mut tree = FhsTree::default();
        tree.add_inline("usr/share/bench/payload", 0o644, payload)?;
        let control = format!(
            "Package: containerd-stack\nVersion: 1.0.{i}-1\nArchitecture: amd64\nMaintainer: bench <bench@example.org>\nInstalled-Size: 204\nSection: admin\nPriority: optional\nDescription: bench package\n synthetic payload for cargo xtask bench\n"
        );
        let path = dir.join(format!("containerd-stack_1.0.{i}-1_amd64.deb"));
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

fn ratio_row(
    case: &'static str,
    ours: f64,
    anchor: f64,
    anchor_name: &'static str,
    max: f64,
    goal: &'static str,
    note: String,
) -> Row {
    let ratio = ours / anchor;
    Row {
        case,
        ours,
        unit: "s",
        anchor: Some(anchor),
        anchor_name: Some(anchor_name),
        ratio: Some(ratio),
        goal,
        met: ratio <= max,
        note,
    }
}

fn limit_row(case: &'static str, ours: f64, max: f64, goal: &'static str, note: &str) -> Row {
    Row {
        case,
        ours,
        unit: "s",
        anchor: None,
        anchor_name: None,
        ratio: None,
        goal,
        met: ours <= max,
        note: note.to_owned(),
    }
}

fn print_table(r: &Report) {
    println!("machine: {} cores; payload: {}", r.cores, r.payload);
    println!(
        "{:<42} {:>12} {:>12} {:>7}  {:<12} met",
        "case", "ours", "anchor", "ratio", "goal"
    );
    for row in &r.rows {
        let fmt = |v: f64| match row.unit {
            "s" if row.case.contains("size") => format!("{v:.0} B"),
            "s" => format!("{v:.3} s"),
            u => format!("{v:.1} {u}"),
        };
        println!(
            "{:<42} {:>12} {:>12} {:>7}  {:<12} {}",
            row.case,
            fmt(row.ours),
            row.anchor.map(fmt).unwrap_or_default(),
            row.ratio.map(|r| format!("{r:.3}")).unwrap_or_default(),
            row.goal,
            if row.met { "yes" } else { "NO" }
        );
        println!("    {}", row.note);
    }
}

/// One bar per row: how far each result is from its goal (1.0 = exactly at the goal).
fn svg(r: &Report) -> String {
    let h = 40 * r.rows.len() + 60;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{h}" font-family="sans-serif" font-size="12">
<text x="10" y="20">containerd-stack bench — {} cores; bar = result / goal (line at 1.0)</text>
"#,
        r.cores
    );
    for (i, row) in r.rows.iter().enumerate() {
        let goal = match (row.ratio, row.goal) {
            (Some(ratio), g) if g.contains("1.01") => ratio / 1.01,
            (Some(ratio), g) if g.contains("1.1×") => ratio / 1.1,
            (Some(ratio), _) => ratio,
            (None, g) if g.contains("300") => row.ours / 300.0,
            (None, g) if g.contains("3 s") => row.ours / 3.0,
            (None, _) => row.ours,
        };
        let y = 40 + i * 40;
        let w = (goal.min(2.0) * 200.0) as usize;
        let color = if row.met { "#4a4" } else { "#c44" };
        s.push_str(&format!(
            r#"<text x="10" y="{}">{}</text><rect x="300" y="{}" width="{w}" height="18" fill="{color}"/><text x="{}" y="{}">{goal:.2}</text>
"#,
            y + 14,
            row.case,
            y,
            305 + w,
            y + 14
        ));
    }
    s.push_str(&format!(
        r#"<line x1="500" y1="35" x2="500" y2="{}" stroke="black"/></svg>"#,
        h - 10
    ));
    s
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
