//! The carts, in memory, keyed by session ID. The library stores nothing: this is the
//! app's own session data, found through `AmpSession::id()`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::catalogue;

/// Most of one product a cart may hold.
pub const MAX_QUANTITY: u32 = 99;

/// One line of a cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Item {
    pub product_id: u32,
    pub quantity: u32,
}

/// Why an add was refused. The cart is untouched in every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddError {
    UnknownProduct(u32),
    /// The cart would hold more than [`MAX_QUANTITY`] of the product.
    TooMany {
        product_id: u32,
        in_cart: u32,
    },
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::UnknownProduct(id) => write!(f, "there is no product {id}"),
            AddError::TooMany {
                product_id,
                in_cart,
            } => write!(
                f,
                "the cart already holds {in_cart} of product {product_id}; at most {MAX_QUANTITY} fit"
            ),
        }
    }
}

/// What a page shows of a session's cart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CartView {
    /// The add a handoff just applied, shown once by the page the shopper lands on (the
    /// shopper did not see the shop's own answer to it: the cache page said "Continuing…").
    pub just_added: Option<Item>,
    pub items: Vec<Item>,
}

#[derive(Debug, Default)]
struct Cart {
    items: Vec<Item>,
    just_added: Option<Item>,
}

/// Every session's cart. Items stay in the order they were first added.
#[derive(Debug, Default)]
pub struct Carts {
    // A std mutex: it is never held across an `.await`.
    carts: Mutex<HashMap<String, Cart>>,
}

impl Carts {
    /// Adds `quantity` (already checked to be 1..=99) of a product; returns the new cart.
    /// `announce`: the next page of this session says what was added (see [`CartView`]).
    pub fn add(
        &self,
        session: &str,
        product_id: u32,
        quantity: u32,
        announce: bool,
    ) -> Result<Vec<Item>, AddError> {
        if catalogue::find(product_id).is_none() {
            return Err(AddError::UnknownProduct(product_id));
        }
        // A panic elsewhere must not take every cart down with it: the data stays consistent
        // because each add is checked before it is written.
        let mut carts = self.carts.lock().unwrap_or_else(PoisonError::into_inner);
        let cart = carts.entry(session.to_owned()).or_default();
        match cart.items.iter_mut().find(|i| i.product_id == product_id) {
            Some(item) => {
                let total = item.quantity.saturating_add(quantity);
                if total > MAX_QUANTITY {
                    return Err(AddError::TooMany {
                        product_id,
                        in_cart: item.quantity,
                    });
                }
                item.quantity = total;
            }
            None => cart.items.push(Item {
                product_id,
                quantity,
            }),
        }
        cart.just_added = announce.then_some(Item {
            product_id,
            quantity,
        });
        Ok(cart.items.clone())
    }

    /// The session's cart (empty when it has none).
    pub fn items(&self, session: &str) -> Vec<Item> {
        let carts = self.carts.lock().unwrap_or_else(PoisonError::into_inner);
        carts
            .get(session)
            .map(|c| c.items.clone())
            .unwrap_or_default()
    }

    /// What a page shows; takes the announcement, so that a reload no longer shows it.
    pub fn view(&self, session: &str) -> CartView {
        let mut carts = self.carts.lock().unwrap_or_else(PoisonError::into_inner);
        match carts.get_mut(session) {
            Some(cart) => CartView {
                just_added: cart.just_added.take(),
                items: cart.items.clone(),
            },
            None => CartView::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_merge_and_refuse() {
        let carts = Carts::default();
        assert_eq!(carts.add("s", 3, 2, false).unwrap().len(), 1);
        assert_eq!(carts.add("s", 1, 1, false).unwrap().len(), 2);
        let items = carts.add("s", 3, 5, true).unwrap();
        assert_eq!(
            items[0],
            Item {
                product_id: 3,
                quantity: 7
            }
        );
        assert_eq!(
            carts.add("s", 13, 1, true),
            Err(AddError::UnknownProduct(13))
        );
        assert!(carts.add("s", 3, 93, true).is_err());
        assert_eq!(carts.items("s"), items);
        assert!(carts.items("other").is_empty());
        // The announcement is the last add's own quantity, shown once.
        let added = Some(Item {
            product_id: 3,
            quantity: 5,
        });
        assert_eq!(
            carts.view("s"),
            CartView {
                just_added: added,
                items: items.clone()
            }
        );
        assert_eq!(
            carts.view("s"),
            CartView {
                just_added: None,
                items
            }
        );
        assert_eq!(carts.view("other"), CartView::default());
    }
}
