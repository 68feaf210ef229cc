//! Puts each conversation's deliveries back in seq order before they reach
//! the connections.
//!
//! Routers work in parallel, so message n+1 of a conversation can reach a
//! gateway before message n. A stream that saw n+1 first would have to fill
//! the hole from history, and in a group every member's stream on this
//! gateway would do so at once: one history call per member for what is
//! usually a reordering of a millisecond. So the gateway holds an early
//! message briefly, per conversation, and lets it go as soon as the missing
//! one arrives, or when the hold runs out (the streams then fill what is
//! still missing from history, as before: this only saves work, it is not
//! what makes delivery complete).
//!
//! Transport-free: items are opaque, time is passed in.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Conversations with nothing held are forgotten after this long idle.
const IDLE: Duration = Duration::from_secs(60);

pub struct Sequencer<T> {
    hold: Duration,
    conversations: HashMap<String, Conversation<T>>,
    /// When holds run out, oldest first (the hold is fixed, so this is also
    /// the order they were made in). An entry may outlive its hold: the
    /// message went out when the missing one came.
    deadlines: VecDeque<(Instant, String)>,
    held: usize,
    last_prune: Option<Instant>,
}

struct Conversation<T> {
    /// The highest seq let through.
    last: u64,
    /// Early arrivals by seq, each with the time its hold ends.
    held: BTreeMap<u64, (Instant, T)>,
    touched: Instant,
}

impl<T> Conversation<T> {
    /// Lets through what now follows `last` without a hole.
    fn release_contiguous(&mut self, out: &mut Vec<T>) {
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() != self.last + 1 {
                break;
            }
            self.last += 1;
            out.push(entry.remove().1);
        }
    }

    fn release_all(&mut self, out: &mut Vec<T>) {
        for (seq, (_, item)) in std::mem::take(&mut self.held) {
            self.last = self.last.max(seq);
            out.push(item);
        }
    }
}

impl<T> Sequencer<T> {
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            conversations: HashMap::new(),
            deadlines: VecDeque::new(),
            held: 0,
            last_prune: None,
        }
    }

    /// Offers message `seq` of `conversation`; returns what may go out now,
    /// in order (possibly nothing, possibly earlier held messages too).
    pub fn offer(&mut self, conversation: &str, seq: u64, item: T, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        let Some(conv) = self.conversations.get_mut(conversation) else {
            // The first message seen: nothing to compare it with.
            self.conversations.insert(
                conversation.to_owned(),
                Conversation {
                    last: seq,
                    held: BTreeMap::new(),
                    touched: now,
                },
            );
            out.push(item);
            return out;
        };
        conv.touched = now;
        if seq <= conv.last {
            // A duplicate or a latecomer: the streams drop or place it.
            out.push(item);
        } else if seq == conv.last + 1 || self.hold.is_zero() {
            conv.last = seq;
            out.push(item);
            conv.release_contiguous(&mut out);
            self.held -= out.len() - 1;
        } else if let std::collections::btree_map::Entry::Vacant(slot) = conv.held.entry(seq) {
            slot.insert((now + self.hold, item));
            self.held += 1;
            self.deadlines
                .push_back((now + self.hold, conversation.to_owned()));
        }
        out
    }

    /// Lets out a conversation's held messages once a hold in it has run
    /// out.
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        while let Some((until, _)) = self.deadlines.front()
            && *until <= now
        {
            let Some((_, conversation)) = self.deadlines.pop_front() else {
                break;
            };
            if let Some(conv) = self.conversations.get_mut(&conversation)
                && conv.held.values().any(|(until, _)| *until <= now)
            {
                let before = out.len();
                conv.release_all(&mut out);
                self.held -= out.len() - before;
            }
        }
        if self.last_prune.is_none_or(|at| now >= at + IDLE) {
            self.last_prune = Some(now);
            self.conversations
                .retain(|_, conv| !conv.held.is_empty() || now < conv.touched + IDLE);
        }
        out
    }

    /// When [`Self::expire`] may next have something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|(until, _)| *until)
    }

    /// Messages currently held.
    pub fn held(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_millis(20);

    #[test]
    fn in_order_messages_pass_at_once() {
        let mut seq = Sequencer::new(HOLD);
        let now = Instant::now();
        assert_eq!(seq.offer("c", 5, 5, now), vec![5]);
        assert_eq!(seq.offer("c", 6, 6, now), vec![6]);
        assert_eq!(seq.offer("d", 1, 1, now), vec![1]);
        assert_eq!(seq.held(), 0);
        assert_eq!(seq.next_deadline(), None);
    }

    #[test]
    fn an_early_message_waits_for_the_one_before_it() {
        let mut seq = Sequencer::new(HOLD);
        let now = Instant::now();
        seq.offer("c", 1, 1, now);
        assert!(seq.offer("c", 3, 3, now).is_empty());
        assert!(seq.offer("c", 4, 4, now).is_empty());
        assert_eq!(seq.next_deadline(), Some(now + HOLD));
        assert_eq!(seq.offer("c", 2, 2, now), vec![2, 3, 4]);
        assert_eq!(seq.held(), 0);
        assert_eq!(seq.offer("c", 5, 5, now), vec![5]);
    }

    #[test]
    fn a_hold_that_runs_out_lets_everything_through_in_order() {
        let mut seq = Sequencer::new(HOLD);
        let now = Instant::now();
        seq.offer("c", 1, 1, now);
        seq.offer("c", 4, 4, now);
        seq.offer("c", 3, 3, now + Duration::from_millis(5));
        assert!(seq.expire(now + Duration::from_millis(19)).is_empty());
        assert_eq!(seq.expire(now + HOLD), vec![3, 4]);
        // The missing one, late: passed on for the streams to place or drop.
        assert_eq!(seq.offer("c", 2, 2, now + HOLD), vec![2]);
        assert_eq!(seq.offer("c", 5, 5, now + HOLD), vec![5]);
    }

    #[test]
    fn duplicates_and_other_conversations_are_not_held_up() {
        let mut seq = Sequencer::new(HOLD);
        let now = Instant::now();
        seq.offer("c", 1, 1, now);
        assert!(seq.offer("c", 3, 3, now).is_empty());
        assert_eq!(seq.offer("c", 1, 10, now), vec![10]);
        assert_eq!(seq.offer("d", 7, 7, now), vec![7]);
        assert_eq!(seq.held(), 1);
    }

    #[test]
    fn idle_conversations_are_forgotten() {
        let mut seq = Sequencer::new(HOLD);
        let now = Instant::now();
        seq.offer("c", 1, 1, now);
        seq.expire(now);
        seq.expire(now + IDLE + Duration::from_secs(1));
        // Forgotten: a later message is the first seen again, not held.
        assert_eq!(seq.offer("c", 9, 9, now + IDLE * 2), vec![9]);
    }

    #[test]
    fn a_zero_hold_reorders_nothing() {
        let mut seq = Sequencer::new(Duration::ZERO);
        let now = Instant::now();
        seq.offer("c", 1, 1, now);
        assert_eq!(seq.offer("c", 3, 3, now), vec![3]);
        assert_eq!(seq.offer("c", 2, 2, now), vec![2]);
    }
}
