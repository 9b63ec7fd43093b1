//! What a person sees while a command runs: progress bars on a terminal (downloads, and
//! every stage that reports its progress: compression, a publish's hashing and writing, a
//! verify's hashing), a timed line per step with `--verbose`, and always warnings and what
//! is being waited for, all on stderr. Off a terminal, only those, and what `--verbose`
//! asks for. Every command that reports progress uses this one listener.

use std::io::IsTerminal;
use std::sync::Mutex;

use containerd_stack::listener::{Event, Listener, Stage, Unit};

/// The bars' key for a stage's progress: downloads are keyed by their file name alone.
fn progress_key(stage: Stage, name: &str) -> String {
    format!("{} {name}", stage.verb(false))
}

fn bar_style(unit: Unit) -> indicatif::ProgressStyle {
    let template = match unit {
        Unit::Bytes => {
            "{msg:44} {bytes:>10}/{total_bytes:10} {bar:24} {binary_bytes_per_sec:>12} {elapsed:>4} eta {eta}"
        }
        // indicatif reads a width given to `per_sec` as its precision: 0 shows `307/s`.
        Unit::Items => "{msg:44} {pos:>10}/{len:10} {bar:24} {per_sec:0} {elapsed:>4} eta {eta}",
    };
    indicatif::ProgressStyle::with_template(template).expect("valid template")
}

/// Progress bars on a terminal; warnings always, on stderr.
pub struct Terminal {
    /// With `--verbose`: when the build started; each step is printed with its time.
    pub verbose: Option<std::time::Instant>,
    bars: Option<(
        indicatif::MultiProgress,
        Mutex<std::collections::BTreeMap<String, indicatif::ProgressBar>>,
    )>,
}

impl Terminal {
    pub fn new(verbose: bool) -> Terminal {
        let verbose = verbose.then(std::time::Instant::now);
        let bars = (std::io::stderr().is_terminal() && verbose.is_none()).then(|| {
            (
                indicatif::MultiProgress::new(),
                Mutex::new(Default::default()),
            )
        });
        Terminal { verbose, bars }
    }

    pub fn finish(&self) {
        if let Some((_, bars)) = &self.bars {
            for bar in bars.lock().unwrap().values() {
                bar.finish_and_clear();
            }
        }
    }

    /// A line on stderr that does not tear the bars being drawn.
    fn line(&self, text: &str) {
        match &self.bars {
            Some((multi, _)) => multi.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}

impl Listener for Terminal {
    fn event(&self, event: Event) {
        match (&self.bars, event) {
            (_, Event::Warning(w)) => self.line(&format!("warning: {w}")),
            // Standing still needs saying even off a terminal, or it looks like a hang.
            (None, Event::Waiting(s)) if self.verbose.is_none() => self.line(&s),
            (None, event) => {
                let Some(start) = self.verbose else { return };
                let line = match event {
                    Event::Step(s) | Event::Waiting(s) => s,
                    Event::Began { stage, name } => format!("{} {name}", stage.verb(false)),
                    Event::Ended { stage, name } => format!("{} {name}", stage.verb(true)),
                    Event::DownloadStarted { name, .. } => format!("downloading {name}"),
                    Event::DownloadFinished { name } => format!("downloaded {name}"),
                    Event::CacheHit { name } => format!("{name} from the cache"),
                    _ => return,
                };
                eprintln!("[{:7.2}s] {line}", start.elapsed().as_secs_f64());
            }
            (Some((multi, bars)), Event::DownloadStarted { name, total }) => {
                let bar = multi.add(match total {
                    Some(t) => indicatif::ProgressBar::new(t),
                    None => indicatif::ProgressBar::no_length(),
                });
                bar.set_style(bar_style(Unit::Bytes));
                bar.set_message(name.clone());
                bars.lock().unwrap().insert(name, bar);
            }
            (Some(_), Event::Waiting(s)) => self.line(&s),
            (
                Some((multi, bars)),
                Event::Progress {
                    stage,
                    name,
                    done,
                    total,
                },
            ) => {
                let mut bars = bars.lock().unwrap();
                let bar = bars.entry(progress_key(stage, &name)).or_insert_with(|| {
                    let bar = multi.add(indicatif::ProgressBar::new(total));
                    bar.set_style(bar_style(stage.unit()));
                    // Redrawn between reports too, so the time and estimate stay live while
                    // a compressor works through a block.
                    bar.enable_steady_tick(std::time::Duration::from_millis(500));
                    bar.set_message(format!("{} {name}", stage.verb(false)));
                    // Updates that come in a burst and then a long silence (a thousand
                    // renames, then one filesystem sync) would otherwise leave the bar
                    // drawn where the burst began.
                    bar.enable_steady_tick(std::time::Duration::from_millis(200));
                    bar
                });
                bar.set_length(total);
                // Workers report out of order by a step or two; the bar only moves forward.
                bar.set_position(done.max(bar.position()));
            }
            (Some((_, bars)), Event::Ended { stage, name }) => {
                if let Some(bar) = bars.lock().unwrap().remove(&progress_key(stage, &name)) {
                    bar.finish_and_clear();
                }
            }
            (Some((_, bars)), Event::DownloadProgress { name, bytes }) => {
                if let Some(bar) = bars.lock().unwrap().get(&name) {
                    bar.set_position(bytes);
                }
            }
            (Some((_, bars)), Event::DownloadFinished { name }) => {
                if let Some(bar) = bars.lock().unwrap().remove(&name) {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
    }
}
