//! An adaptive read buffer: small while a session is idle, large while data streams.
//!
//! A thousand idle sessions should cost little memory, and a million-row result should move in
//! large reads. The read size doubles while reads fill it and halves while they come back much
//! smaller; an emptied buffer that grew past what the current read size needs is released.

use bytes::BytesMut;

/// A read buffer whose read size adapts to the traffic.
pub struct ReadBuffer {
    buf: BytesMut,
    next: usize,
    min: usize,
    max: usize,
}

impl ReadBuffer {
    /// A buffer reading at least `min` and at most `max` bytes at a time.
    pub fn new(min: usize, max: usize) -> ReadBuffer {
        ReadBuffer {
            buf: BytesMut::new(),
            next: min,
            min,
            max,
        }
    }

    /// Makes room for the next read.
    pub fn prepare(&mut self) -> &mut BytesMut {
        if self.buf.is_empty() && self.buf.capacity() > 4 * self.next.max(self.min) {
            self.buf = BytesMut::new();
        }
        if self.buf.capacity() - self.buf.len() < self.next {
            self.buf.reserve(self.next);
        }
        &mut self.buf
    }

    /// Adapts the read size to a read of `n` bytes.
    pub fn observe(&mut self, n: usize) {
        if n >= self.next {
            self.next = (self.next * 2).min(self.max);
        } else if n < self.next / 4 {
            self.next = (self.next / 2).max(self.min);
        }
    }

    /// The buffered bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The buffered bytes, to edit in place (masking).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Drops the first `n` bytes (they were forwarded).
    pub fn consume(&mut self, n: usize) {
        bytes::Buf::advance(&mut self.buf, n);
    }
}

#[cfg(test)]
mod tests {
    use super::ReadBuffer;

    #[test]
    fn grows_under_load_and_shrinks_when_idle() {
        let mut b = ReadBuffer::new(4096, 65536);
        assert!(b.prepare().capacity() >= 4096);
        for _ in 0..5 {
            let cap = b.prepare().capacity();
            b.observe(cap);
        }
        assert_eq!(b.next, 65536);
        for _ in 0..10 {
            b.observe(10);
        }
        assert_eq!(b.next, 4096);
        assert!(
            b.prepare().capacity() < 65536,
            "the large allocation was released"
        );
    }
}
