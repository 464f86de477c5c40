//! Locations inside the document (or the element) that ops read and write, and the
//! edits on `serde_json::Value` trees that go with them.
//!
//! Owns `Target` (a path compiled to segments once, root resolved away) and its
//! `get`/`set`/`take`, plus `KeepTree` (the `keep` op's allowlist). The rules that make
//! writes predictable: missing objects along a path are created (a `null` on the way
//! counts as missing); an existing value of another kind is never replaced to make
//! room, and an array index must exist (or be one past the end, which appends) — a
//! write that cannot happen changes nothing. No parsing, no allocation beyond the keys
//! and values written.

use std::collections::BTreeMap;

use gatepulse_filter_dsl::ast::Segment;
use serde_json::{Map, Value};

/// One step of a target path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(Box<str>),
    Index(usize),
}

/// A path below the root (`payload` or `it`), compiled once.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    segs: Box<[Seg]>,
    /// The path as the spec wrote it, for traces.
    text: Box<str>,
}

impl Target {
    pub(crate) fn new(segments: &[Segment], text: &str) -> Target {
        Target {
            segs: segments
                .iter()
                .map(|s| match s {
                    Segment::Field(k) => Seg::Key(k.as_str().into()),
                    Segment::Index(i) => Seg::Index(*i),
                })
                .collect(),
            text: text.into(),
        }
    }

    pub(crate) fn segs(&self) -> &[Seg] {
        &self.segs
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The root itself (`payload` or `it`).
    pub(crate) fn is_root(&self) -> bool {
        self.segs.is_empty()
    }

    pub(crate) fn has_index(&self) -> bool {
        self.segs.iter().any(|s| matches!(s, Seg::Index(_)))
    }

    /// Bytes of the keys a write may create (keys, quotes, colon, comma), charged
    /// against the output budget.
    pub(crate) fn key_bytes(&self) -> usize {
        self.segs
            .iter()
            .map(|s| match s {
                Seg::Key(k) => k.len() + 4,
                Seg::Index(_) => 0,
            })
            .sum()
    }

    pub(crate) fn get<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut cur = root;
        for seg in self.segs.iter() {
            cur = match (seg, cur) {
                (Seg::Key(k), Value::Object(map)) => map.get(&**k)?,
                (Seg::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    pub(crate) fn get_mut<'a>(&self, root: &'a mut Value) -> Option<&'a mut Value> {
        walk_mut(root, &self.segs)
    }

    /// Writes `v` at the path, creating missing objects on the way. `Err(v)` (and
    /// nothing changed) when the path is blocked: it goes through a value that is not
    /// an object/array as the next segment needs, or through a missing array element.
    pub(crate) fn set(&self, root: &mut Value, v: Value) -> Result<(), Value> {
        let segs = &self.segs;
        let mut cur = root;
        for (pos, seg) in segs.iter().enumerate() {
            let last = pos + 1 == segs.len();
            match seg {
                Seg::Key(k) => {
                    if cur.is_null() {
                        if !creatable(&segs[pos..]) {
                            return Err(v);
                        }
                        *cur = Value::Object(Map::new());
                    }
                    let Value::Object(map) = cur else {
                        return Err(v);
                    };
                    if last {
                        match map.get_mut(&**k) {
                            Some(slot) => *slot = v,
                            None => {
                                map.insert(k.to_string(), v);
                            }
                        }
                        return Ok(());
                    }
                    let missing = map.get(&**k).is_none_or(Value::is_null);
                    if missing && !creatable(&segs[pos + 1..]) {
                        return Err(v);
                    }
                    if !map.contains_key(&**k) {
                        map.insert(k.to_string(), Value::Object(Map::new()));
                    }
                    cur = match map.get_mut(&**k) {
                        Some(next) => next,
                        None => return Err(v),
                    };
                }
                Seg::Index(i) => {
                    let Value::Array(items) = cur else {
                        return Err(v);
                    };
                    if last {
                        if *i < items.len() {
                            items[*i] = v;
                        } else if *i == items.len() {
                            items.push(v);
                        } else {
                            return Err(v);
                        }
                        return Ok(());
                    }
                    cur = match items.get_mut(*i) {
                        Some(next) => next,
                        None => return Err(v),
                    };
                }
            }
        }
        *cur = v;
        Ok(())
    }

    /// Removes and returns the value at the path (an array element is removed and the
    /// later ones move up). `None` when there is nothing there. Never the root.
    pub(crate) fn take(&self, root: &mut Value) -> Option<Value> {
        let (last, parents) = self.segs.split_last()?;
        match (last, walk_mut(root, parents)?) {
            (Seg::Key(k), Value::Object(map)) => map.remove(&**k),
            (Seg::Index(i), Value::Array(items)) if *i < items.len() => Some(items.remove(*i)),
            _ => None,
        }
    }
}

impl Target {
    /// Puts back a value just taken from this path with [`Target::take`] (an array
    /// element goes back to its index). The parents are untouched by a take, so this
    /// always lands where the value came from.
    pub(crate) fn restore(&self, root: &mut Value, v: Value) {
        let Some((last, parents)) = self.segs.split_last() else {
            *root = v;
            return;
        };
        match (last, walk_mut(root, parents)) {
            (Seg::Key(k), Some(Value::Object(map))) => {
                map.insert(k.to_string(), v);
            }
            (Seg::Index(i), Some(Value::Array(items))) if *i <= items.len() => {
                items.insert(*i, v);
            }
            _ => {}
        }
    }
}

/// Whether every remaining segment can be created from nothing (object keys only).
fn creatable(segs: &[Seg]) -> bool {
    segs.iter().all(|s| matches!(s, Seg::Key(_)))
}

fn walk_mut<'a>(root: &'a mut Value, segs: &[Seg]) -> Option<&'a mut Value> {
    let mut cur = root;
    for seg in segs {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(map)) => map.get_mut(&**k)?,
            (Seg::Index(i), Value::Array(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The `keep` op's allowlist as a tree of object keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeepTree {
    /// Keep this value whole (a listed path ends here).
    whole: bool,
    children: BTreeMap<String, KeepTree>,
}

impl KeepTree {
    /// Builds the tree from object-key paths (the compiler refuses indexes and roots).
    pub(crate) fn new<'t>(targets: impl IntoIterator<Item = &'t Target>) -> KeepTree {
        let mut root = KeepTree::default();
        for target in targets {
            let mut node = &mut root;
            for seg in target.segs() {
                if node.whole {
                    break;
                }
                if let Seg::Key(k) = seg {
                    node = node.children.entry(k.to_string()).or_default();
                }
            }
            node.whole = true;
            node.children.clear();
        }
        root
    }

    /// Keeps only the listed paths that exist, and the objects on the way to them;
    /// everything else is removed. A root that is not an object becomes `{}`.
    pub(crate) fn apply(&self, root: &mut Value) {
        if !self.project(root) && !root.is_object() {
            *root = Value::Object(Map::new());
        }
    }

    /// Projects `v` onto this node; false when nothing below it is kept.
    fn project(&self, v: &mut Value) -> bool {
        if self.whole {
            return true;
        }
        let Value::Object(map) = v else {
            return false;
        };
        map.retain(|k, child| {
            self.children
                .get(k.as_str())
                .is_some_and(|sub| sub.project(child))
        });
        !map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(segs: &[Segment]) -> Target {
        Target::new(segs, "test")
    }

    fn key(k: &str) -> Segment {
        Segment::Field(k.into())
    }

    #[test]
    fn set_creates_objects_and_never_clobbers() {
        let mut doc = json!({"a": 1, "n": null, "list": [1, 2]});
        assert!(t(&[key("x"), key("y")]).set(&mut doc, json!(2)).is_ok());
        assert!(t(&[key("n"), key("z")]).set(&mut doc, json!(3)).is_ok());
        assert_eq!(
            t(&[key("a"), key("b")]).set(&mut doc, json!(4)),
            Err(json!(4))
        );
        assert_eq!(
            t(&[key("new"), Segment::Index(0)]).set(&mut doc, json!(5)),
            Err(json!(5))
        );
        assert!(
            t(&[key("list"), Segment::Index(2)])
                .set(&mut doc, json!(3))
                .is_ok()
        );
        assert_eq!(
            t(&[key("list"), Segment::Index(9)]).set(&mut doc, json!(9)),
            Err(json!(9))
        );
        assert!(
            t(&[key("list"), Segment::Index(0)])
                .set(&mut doc, json!(0))
                .is_ok()
        );
        assert_eq!(
            doc,
            json!({"a": 1, "n": {"z": 3}, "list": [0, 2, 3], "x": {"y": 2}})
        );
        let mut root = json!(null);
        assert!(t(&[key("k")]).set(&mut root, json!(1)).is_ok());
        assert_eq!(root, json!({"k": 1}));
        assert!(t(&[]).set(&mut root, json!("whole")).is_ok());
        assert_eq!(root, json!("whole"));
    }

    #[test]
    fn blocked_set_changes_nothing() {
        let mut doc = json!({"a": {"b": "str"}});
        let before = doc.clone();
        assert!(
            t(&[key("a"), key("c"), Segment::Index(0)])
                .set(&mut doc, json!(1))
                .is_err()
        );
        assert!(
            t(&[key("a"), key("b"), key("c")])
                .set(&mut doc, json!(1))
                .is_err()
        );
        assert_eq!(doc, before);
    }

    #[test]
    fn take_removes_keys_and_elements() {
        let mut doc = json!({"a": {"b": 1}, "l": [1, 2, 3]});
        assert_eq!(t(&[key("a"), key("b")]).take(&mut doc), Some(json!(1)));
        assert_eq!(t(&[key("a"), key("b")]).take(&mut doc), None);
        assert_eq!(
            t(&[key("l"), Segment::Index(0)]).take(&mut doc),
            Some(json!(1))
        );
        assert_eq!(t(&[key("l"), Segment::Index(5)]).take(&mut doc), None);
        assert_eq!(t(&[]).take(&mut doc), None);
        assert_eq!(doc, json!({"a": {}, "l": [2, 3]}));
    }

    #[test]
    fn keep_projects_onto_existing_paths() {
        let tree = KeepTree::new(&[
            t(&[key("id")]),
            t(&[key("customer"), key("email")]),
            t(&[key("missing"), key("x")]),
            t(&[key("scalar"), key("x")]),
        ]);
        let mut doc = json!({
            "id": 1, "secret": 2,
            "customer": {"email": "e", "ssn": "s"},
            "scalar": 5,
            "empty": {}
        });
        tree.apply(&mut doc);
        assert_eq!(doc, json!({"id": 1, "customer": {"email": "e"}}));
        let mut arr = json!([1, 2]);
        tree.apply(&mut arr);
        assert_eq!(arr, json!({}));
        let mut none = json!({"other": 1});
        tree.apply(&mut none);
        assert_eq!(none, json!({}));
    }

    #[test]
    fn a_shorter_keep_path_wins() {
        let tree = KeepTree::new(&[t(&[key("a"), key("b")]), t(&[key("a")])]);
        let mut doc = json!({"a": {"b": 1, "c": 2}, "d": 3});
        tree.apply(&mut doc);
        assert_eq!(doc, json!({"a": {"b": 1, "c": 2}}));
    }
}
