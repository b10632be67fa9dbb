//! A bounded window of ids already delivered: the last `capacity` ids are remembered,
//! older ones are forgotten first in, first out. Memory stays bounded however long a
//! subscription runs; a duplicate older than the window would get through, which the
//! server's exact resume makes moot in practice (duplicates come from overlaps at a
//! reconnect or a backfill hand-over, never from far back).

use std::collections::{HashSet, VecDeque};

#[derive(Debug)]
pub struct DedupeWindow {
    capacity: usize,
    seen: HashSet<String>,
    order: VecDeque<String>,
}

impl DedupeWindow {
    /// A window of `capacity` ids; 0 turns de-duplication off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: HashSet::with_capacity(capacity.min(4096)),
            order: VecDeque::with_capacity(capacity.min(4096)),
        }
    }

    /// True when `id` is new (and remembers it); false for a duplicate.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.capacity == 0 {
            return true;
        }
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_repeats_inside_the_window() {
        let mut window = DedupeWindow::new(3);
        assert!(window.first_time("a"));
        assert!(window.first_time("b"));
        assert!(!window.first_time("a"));
        assert!(window.first_time("c"));
        assert!(!window.first_time("b"));
    }

    #[test]
    fn forgets_the_oldest_and_stays_bounded() {
        let mut window = DedupeWindow::new(3);
        for id in ["a", "b", "c", "d"] {
            assert!(window.first_time(id));
        }
        assert_eq!(window.len(), 3);
        assert!(window.first_time("a"), "a fell out of the window");
        assert!(!window.first_time("d"));
        for i in 0..10_000 {
            window.first_time(&i.to_string());
        }
        assert_eq!(window.len(), 3);
    }

    #[test]
    fn zero_capacity_lets_everything_through() {
        let mut window = DedupeWindow::new(0);
        assert!(window.first_time("a"));
        assert!(window.first_time("a"));
        assert!(window.is_empty());
    }
}
