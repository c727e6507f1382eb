//! Only the bench (`benches/masking.rs`) lives here.
