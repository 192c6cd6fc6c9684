//! The confirmation page in the shop's words: "Add 1 × Paper filters (100) to your cart?"
//! instead of `product_id 5`.

use tower_amp_session::{ConfigBuilder, PendingChange};

use crate::catalogue;

/// Registers the shop's describers on the layer's builder.
pub fn describe_changes(builder: ConfigBuilder) -> ConfigBuilder {
    builder.describe("/cart/add", add_to_cart)
}

/// The sentence for an add to the cart, or `None` (the layer's default page) when the
/// fields do not name a product the shop sells.
fn add_to_cart(change: &PendingChange) -> Option<String> {
    let id: u32 = change.field("product_id")?.parse().ok()?;
    let product = catalogue::find(id)?;
    let quantity: u32 = change
        .field("quantity")
        .map_or(Some(1), |q| q.parse().ok())?;
    Some(format!("Add {quantity} × {} to your cart?", product.name))
}
