//! Log lines to standard output, batched. A line is appended to a buffer and a background thread
//! writes what has gathered, so under load many access lines go out in one system call instead
//! of one each (bench/RESULTS.md, round 7). A line waits at most `WINDOW` plus the thread's
//! wake-up; `Flusher` writes what is left when the server stops.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long the thread lets lines gather after a write.
const WINDOW: Duration = Duration::from_millis(5);
/// Past this many buffered bytes (standard output blocked, say by a full pipe), lines are counted
/// and dropped rather than held: the log must never grow the server's memory without bound.
const MAX_BUFFERED: usize = 4 << 20;

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
    closed: bool,
}

struct Shared {
    buffer: Mutex<Buffer>,
    ready: Condvar,
    /// Held while a batch is taken and written, so batches reach the output in order whoever
    /// writes them (the thread, or `Flusher::flush`). Always taken before `buffer`.
    output: Mutex<Box<dyn Write + Send>>,
}

impl Shared {
    fn new(output: Box<dyn Write + Send>) -> Self {
        Shared { buffer: Mutex::default(), ready: Condvar::new(), output: Mutex::new(output) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes what is buffered; returns whether the buffer was closed.
    fn write_batch(&self, batch: &mut Vec<u8>) -> bool {
        let mut out = self.output.lock().unwrap_or_else(|p| p.into_inner());
        let (dropped, closed) = {
            let mut buffer = self.lock();
            // Swapped, not copied: the buffer keeps the capacity the last batch gave back.
            std::mem::swap(batch, &mut buffer.bytes);
            (std::mem::take(&mut buffer.dropped), buffer.closed)
        };
        if dropped > 0 {
            let _ = writeln!(batch, "ladder: {dropped} log lines dropped while standard output was blocked");
        }
        // Nowhere to report a failed write to: the log is the reporting channel.
        let _ = out.write_all(batch).and_then(|()| out.flush());
        batch.clear();
        closed
    }
}

/// The `MakeWriter` for `tracing_subscriber::fmt().with_writer(…)`.
#[derive(Clone)]
pub struct BatchedStdout(Arc<Shared>);

/// Writes what is buffered on `flush`, and everything left when dropped (then stops the thread).
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the thread that writes to standard output.
pub fn batched_stdout() -> std::io::Result<(BatchedStdout, Flusher)> {
    start(Box::new(std::io::stdout()))
}

fn start(output: Box<dyn Write + Send>) -> std::io::Result<(BatchedStdout, Flusher)> {
    let shared = Arc::new(Shared::new(output));
    let thread = std::thread::Builder::new().name("ladder-log".into()).spawn({
        let shared = shared.clone();
        move || write_batches(&shared)
    })?;
    Ok((BatchedStdout(shared.clone()), Flusher { shared, thread: Some(thread) }))
}

fn write_batches(shared: &Shared) {
    let mut batch = Vec::new();
    loop {
        {
            let mut buffer = shared.lock();
            while buffer.bytes.is_empty() && buffer.dropped == 0 && !buffer.closed {
                buffer = shared.ready.wait(buffer).unwrap_or_else(|p| p.into_inner());
            }
        }
        if shared.write_batch(&mut batch) {
            return;
        }
        std::thread::sleep(WINDOW);
    }
}

impl Flusher {
    /// Writes everything logged so far, now (before printing to standard output directly).
    pub fn flush(&self) {
        self.shared.write_batch(&mut Vec::new());
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One formatted event: the subscriber writes it whole, then drops the writer.
pub struct Line<'a>(&'a Shared);

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.0.lock();
        if buffer.closed {
            return Ok(bytes.len());
        }
        if buffer.bytes.len() + bytes.len() > MAX_BUFFERED {
            buffer.dropped += 1;
            return Ok(bytes.len());
        }
        let was_empty = buffer.bytes.is_empty();
        buffer.bytes.extend_from_slice(bytes);
        drop(buffer);
        // Only the first line of a batch wakes the thread; the rest find it already due.
        if was_empty {
            self.0.ready.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedStdout {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(shared: &Shared, text: &str) {
        Line(shared).write_all(text.as_bytes()).unwrap();
    }

    /// An output the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_in_order_and_all_of_them_when_the_flusher_goes() {
        let captured = Captured::default();
        let (writer, flusher) = start(Box::new(captured.clone())).unwrap();
        for i in 0..1000 {
            line(&writer.0, &format!("line {i}\n"));
        }
        flusher.flush();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(captured.text(), expected, "flush writes everything logged before it");
        line(&writer.0, "the last line\n");
        drop(flusher);
        assert_eq!(captured.text(), expected + "the last line\n");
        line(&writer.0, "after the end\n");
        assert!(writer.0.lock().bytes.is_empty(), "nothing is kept once the thread has stopped");
    }

    #[test]
    fn a_blocked_output_drops_and_counts_lines_instead_of_growing() {
        let shared = Shared::new(Box::new(Captured::default()));
        let long = "x".repeat(MAX_BUFFERED / 2);
        line(&shared, &long);
        line(&shared, &long);
        line(&shared, &long);
        let buffer = shared.lock();
        assert_eq!((buffer.bytes.len(), buffer.dropped), (2 * long.len(), 1));
    }
}
