//! Where each key of a YAML document sits, so a problem found after deserializing (an `array_id` that
//! names no array, an adapter field its JSON Schema refuses) can still name its line.
//!
//! Paths are written like serde_yaml writes them: `inverters[0].adapter.baudrate`.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column (both 1-based) of every mapping key and sequence item in one document.
#[derive(Debug, Default)]
pub struct YamlIndex {
    positions: HashMap<String, (usize, usize)>,
}

impl YamlIndex {
    /// Indexes `text`. A document that does not parse yields an empty index: serde_yaml reports the
    /// syntax error itself, with its position.
    pub fn build(text: &str) -> YamlIndex {
        let mut builder = IndexBuilder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return YamlIndex::default();
        }
        YamlIndex {
            positions: builder.positions,
        }
    }

    /// The position of `path`, or of its closest indexed ancestor.
    pub fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let mut current = path;
        loop {
            if let Some(position) = self.positions.get(current) {
                return Some(*position);
            }
            let cut = current.rfind(['.', '['])?;
            current = &current[..cut];
        }
    }
}

enum Frame {
    Mapping {
        path: String,
        pending_key: Option<String>,
    },
    Sequence {
        path: String,
        next_index: usize,
    },
}

#[derive(Default)]
struct IndexBuilder {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl IndexBuilder {
    /// Called when a node (scalar or container) starts; returns the path of that node.
    fn node_path(&mut self, mark: Marker) -> Option<String> {
        let position = (mark.line(), mark.col() + 1);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Sequence { path, next_index }) => {
                let item = format!("{path}[{next_index}]");
                *next_index += 1;
                self.positions.entry(item.clone()).or_insert(position);
                Some(item)
            }
            Some(Frame::Mapping { pending_key, path }) => {
                pending_key.take().map(|key| join(path, &key))
            }
        }
    }

    fn on_scalar(&mut self, value: String, mark: Marker) {
        if let Some(Frame::Mapping { path, pending_key }) = self.stack.last_mut()
            && pending_key.is_none()
        {
            let key_path = join(path, &value);
            // yaml-rust2 counts columns from 0, lines from 1.
            self.positions
                .insert(key_path, (mark.line(), mark.col() + 1));
            *pending_key = Some(value);
            return;
        }
        self.node_path(mark);
    }
}

impl MarkedEventReceiver for IndexBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(value, ..) => self.on_scalar(value, mark),
            Event::Alias(_) => {
                self.node_path(mark);
            }
            Event::MappingStart(..) => {
                let path = self.node_path(mark).unwrap_or_default();
                self.stack.push(Frame::Mapping {
                    path,
                    pending_key: None,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(mark).unwrap_or_default();
                self.stack.push(Frame::Sequence {
                    path,
                    next_index: 0,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_keys_and_sequence_items() {
        let text = "home:\n  id: home\ninverters:\n  - id: a\n    adapter:\n      type: powdrive\n      baudrate: \"9600\"\n  - id: b\n";
        let index = YamlIndex::build(text);
        assert_eq!(index.locate("home.id").map(|p| p.0), Some(2));
        assert_eq!(
            index.locate("inverters[0].adapter.baudrate").map(|p| p.0),
            Some(7)
        );
        assert_eq!(index.locate("inverters[1].id").map(|p| p.0), Some(8));
        // an unknown leaf falls back to its parent
        assert_eq!(index.locate("inverters[1].name").map(|p| p.0), Some(8));
    }
}
