//! Splits a byte stream into JSONL lines with a bounded buffer: what is held at any time is the
//! unfinished line plus the chunk just received, never the file.

/// A line longer than this is refused (Shopify's lines are one object each, far smaller).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Why splitting stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("line {line} is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong { line: u64 },
    #[error("line {line}: {reason}")]
    Line { line: u64, reason: String },
}

/// Feeds complete lines to a callback as chunks arrive.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buffer: Vec<u8>,
    /// Lines seen so far (numbers in errors start at 1).
    lines: u64,
    /// The most bytes the buffer ever held: the memory the file costs.
    peak: usize,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `chunk` and calls `each` for every line it completes (without its `\n` or `\r\n`;
    /// blank lines are skipped).
    pub fn push(
        &mut self,
        chunk: &[u8],
        mut each: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), SplitError> {
        self.buffer.extend_from_slice(chunk);
        self.peak = self.peak.max(self.buffer.len());
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &self.buffer) {
            let line = &self.buffer[start..end];
            start = end + 1;
            self.lines += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                each(line).map_err(|reason| SplitError::Line {
                    line: self.lines,
                    reason,
                })?;
            }
        }
        self.buffer.drain(..start);
        if self.buffer.len() > MAX_LINE_BYTES {
            return Err(SplitError::LineTooLong {
                line: self.lines + 1,
            });
        }
        Ok(())
    }

    /// The last line, when the file does not end with a newline.
    pub fn finish(
        mut self,
        each: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<Stats, SplitError> {
        if !self.buffer.is_empty() {
            self.push(b"\n", each)?;
        }
        Ok(Stats {
            lines: self.lines,
            peak_buffered_bytes: self.peak,
        })
    }
}

/// What splitting a whole file came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub lines: u64,
    pub peak_buffered_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> (Vec<String>, Stats) {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::new();
        let mut collect = |line: &[u8]| {
            lines.push(String::from_utf8(line.to_vec()).unwrap());
            Ok(())
        };
        for chunk in chunks {
            splitter.push(chunk, &mut collect).unwrap();
        }
        let stats = splitter.finish(&mut collect).unwrap();
        (lines, stats)
    }

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let (lines, stats) = split(&[b"{\"a\":1}\n{\"b\"", b":2}\r\n\n{\"c\":", b"3}"]);
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
        assert_eq!(stats.lines, 4, "the blank line counts as a line");
    }

    #[test]
    fn the_buffer_holds_at_most_the_unfinished_line_and_one_chunk() {
        let line = b"{\"id\":\"gid://shopify/Customer/1\",\"firstName\":\"A\"}\n";
        let chunk: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 100)
            .collect();
        let chunks: Vec<&[u8]> = std::iter::repeat_n(chunk.as_slice(), 1000).collect();
        let (lines, stats) = split(&chunks);
        assert_eq!(lines.len(), 100_000);
        assert!(stats.peak_buffered_bytes <= chunk.len() + line.len());
    }

    #[test]
    fn a_callback_error_names_its_line() {
        let mut splitter = LineSplitter::new();
        let error = splitter
            .push(b"ok\nbad\n", |line| match line {
                b"bad" => Err("broken".into()),
                _ => Ok(()),
            })
            .unwrap_err();
        assert_eq!(
            error,
            SplitError::Line {
                line: 2,
                reason: "broken".into()
            }
        );
    }
}
