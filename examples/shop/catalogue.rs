//! The twelve products the shop sells.

/// One product. Prices are in cents so that no float ever touches money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    pub id: u32,
    pub name: &'static str,
    pub price_cents: u32,
}

impl Product {
    /// The price as `€12.34`.
    pub fn price(&self) -> String {
        format_cents(u64::from(self.price_cents))
    }
}

pub const PRODUCTS: [Product; 12] = [
    product(1, "Espresso cup", 890),
    product(2, "Milk jug", 1450),
    product(3, "Pour-over kettle", 3990),
    product(4, "Hand grinder", 5900),
    product(5, "Paper filters (100)", 490),
    product(6, "Dripper", 2200),
    product(7, "Tamper", 2750),
    product(8, "Scale", 3400),
    product(9, "Knock box", 1900),
    product(10, "Travel mug", 1600),
    product(11, "Beans, 250 g", 1150),
    product(12, "Cleaning tablets", 990),
];

const fn product(id: u32, name: &'static str, price_cents: u32) -> Product {
    Product {
        id,
        name,
        price_cents,
    }
}

/// The product with this id, if the shop sells it.
pub fn find(id: u32) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.id == id)
}

/// `1234` cents as `€12.34`: the shop sells in euros.
pub fn format_cents(cents: u64) -> String {
    format!("\u{20ac}{}.{:02}", cents / 100, cents % 100)
}
