//! Keyset pagination, one way for every list: a store is asked for one item more than the page
//! holds, and that extra item tells whether another page follows.

/// At most `limit` items strictly after the position `after`, in the list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<K> {
    /// How many items the page holds.
    pub limit: u32,
    /// The position of the previous page's last item; `None` for the first page.
    pub after: Option<K>,
}

/// One page of a list, and the position after which the next one starts, if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, K> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// The position of the last item when more follow.
    pub next: Option<K>,
}

impl<K: Clone> PageRequest<K> {
    /// What to ask the store: one item more than the page holds.
    pub fn probe(&self) -> PageRequest<K> {
        PageRequest {
            limit: self.limit.saturating_add(1),
            after: self.after.clone(),
        }
    }

    /// The page made of what the store returned for [`probe`](Self::probe); `key` gives an
    /// item's position.
    pub fn page<T>(&self, mut found: Vec<T>, key: impl Fn(&T) -> K) -> Page<T, K> {
        let limit = self.limit as usize;
        let more = found.len() > limit;
        found.truncate(limit);
        let next = if more { found.last().map(key) } else { None };
        Page { items: found, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extra_item_tells_that_a_page_follows() {
        let ask = PageRequest {
            limit: 2,
            after: None::<u32>,
        };
        assert_eq!(ask.probe().limit, 3);
        let full = ask.page(vec![1, 2, 3], |i| *i);
        assert_eq!((full.items, full.next), (vec![1, 2], Some(2)));
        let last = ask.page(vec![1, 2], |i| *i);
        assert_eq!((last.items, last.next), (vec![1, 2], None));
        let empty = ask.page(Vec::<u32>::new(), |i| *i);
        assert_eq!((empty.items, empty.next), (vec![], None));
    }
}
