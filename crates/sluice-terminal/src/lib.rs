//! # sluice-terminal
//!
//! Interactive terminals: the command line a person submits with Enter is rebuilt and judged
//! before the Enter reaches the program, for every terminal the gateway relays (SSH shells,
//! pty sessions of command runtimes).
//!
//! ## Layout
//! - [`line`]: the line from the keys ([`line::LineInput`], a minimal line-editor model) and
//!   from the screen ([`line::Screen`], a `vt100` emulator over the program's output).
//! - [`typing`]: the input direction of a terminal relay: keys passed on, each Enter held
//!   until its line's verdict ([`typing::type_keys`], with the relay as [`typing::Side`]).
//! - [`recording`]: a recorded terminal taken from a session's stored events, and its
//!   asciicast v2 form.
//! - [`replay`]: a recorded or live terminal as screen frames (rows of styled text) that the
//!   web console's player shows.

pub mod line;
pub mod recording;
pub mod replay;
pub mod typing;

pub use typing::{type_keys, LineVerdict, Side, TerminalView, Typing};
