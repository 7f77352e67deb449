//! The requests a simulator received, for tests to inspect.

/// The log keeps at most this many entries by default; a long emulator run must not grow it
/// without end.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// A bounded log, oldest first. When full, the older half is dropped at once (cheaper than
/// dropping one entry per request).
#[derive(Debug, Clone)]
pub struct RequestLog<T> {
    entries: Vec<T>,
    max: usize,
}

impl<T> Default for RequestLog<T> {
    fn default() -> Self {
        RequestLog::with_max(DEFAULT_MAX_ENTRIES)
    }
}

impl<T> RequestLog<T> {
    /// A log of at most `max` entries (at least 2).
    pub fn with_max(max: usize) -> Self {
        RequestLog {
            entries: Vec::new(),
            max: max.max(2),
        }
    }

    pub fn push(&mut self, entry: T) {
        if self.entries.len() >= self.max {
            self.entries.drain(..self.max / 2);
        }
        self.entries.push(entry);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<&T> {
        self.entries.last()
    }
}

impl<T: Clone> RequestLog<T> {
    /// Every entry, oldest first.
    pub fn to_vec(&self) -> Vec<T> {
        self.entries.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_older_half_when_full() {
        let mut log = RequestLog::with_max(4);
        for i in 0..5 {
            log.push(i);
        }
        assert_eq!(log.to_vec(), [2, 3, 4]);
        assert_eq!(log.last(), Some(&4));
        log.clear();
        assert!(log.is_empty());
    }
}
