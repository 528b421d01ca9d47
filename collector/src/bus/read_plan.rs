//! Which Modbus reads one poll of a map needs: registers merged into as few requests as the
//! 125-register limit and the map's `max_gap` allow. The plan is computed once per map.

use crate::drivers::register_map::{MAX_REGISTERS_PER_READ, RegisterKind, RegisterMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    pub kind: RegisterKind,
    pub start: u16,
    pub count: u16,
}

impl ReadRequest {
    pub fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }

    pub fn covers(&self, kind: RegisterKind, address: u16, words: u16) -> bool {
        self.kind == kind
            && address >= self.start
            && u32::from(address) + u32::from(words) <= self.end()
    }
}

/// The reads for every register of `map`. Registers are taken in address order per kind; a read grows
/// while the next register starts at most `max_gap` registers after its end and the whole read stays
/// within 125 registers. Growing as far as possible is optimal for this kind of covering.
pub fn plan(map: &RegisterMap) -> Vec<ReadRequest> {
    let mut spans: Vec<(RegisterKind, u32, u32)> = map
        .registers
        .iter()
        .map(|r| {
            (
                r.kind,
                u32::from(r.address),
                u32::from(r.address) + u32::from(r.word_count()),
            )
        })
        .collect();
    spans.sort();
    let mut requests: Vec<ReadRequest> = Vec::new();
    let mut current: Option<(RegisterKind, u32, u32)> = None;
    for (kind, start, end) in spans {
        current = match current {
            Some((k, s, e))
                if k == kind
                    && start <= e + u32::from(map.max_gap)
                    && end.max(e) - s <= u32::from(MAX_REGISTERS_PER_READ) =>
            {
                Some((k, s, e.max(end)))
            }
            Some((k, s, e)) => {
                requests.push(ReadRequest {
                    kind: k,
                    start: s as u16,
                    count: (e - s) as u16,
                });
                Some((kind, start, end))
            }
            None => Some((kind, start, end)),
        };
    }
    if let Some((k, s, e)) = current {
        requests.push(ReadRequest {
            kind: k,
            start: s as u16,
            count: (e - s) as u16,
        });
    }
    requests
}
