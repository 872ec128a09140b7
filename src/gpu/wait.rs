//! A value that a wgpu callback sets once and a caller awaits: the end of a buffer mapping, on native
//! targets (where the caller polls the device first; the callback may still be run by another thread's
//! poll a moment later) and in the browser (where the event loop delivers it). A callback dropped
//! without running ends the wait with `None` rather than leaving it forever. No executor or channel
//! crate needed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

struct State<T> {
    value: Option<T>,
    /// The setter is gone: no value will come after this.
    closed: bool,
    waker: Option<Waker>,
}

/// The awaiting side.
pub(crate) struct Once<T> {
    state: Arc<Mutex<State<T>>>,
}

/// The setting side, moved into the callback.
pub(crate) struct Setter<T> {
    state: Arc<Mutex<State<T>>>,
}

/// A new pair.
pub(crate) fn once<T>() -> (Setter<T>, Once<T>) {
    let state = Arc::new(Mutex::new(State { value: None, closed: false, waker: None }));
    (Setter { state: state.clone() }, Once { state })
}

impl<T> Setter<T> {
    /// Stores the value; dropping the setter then wakes the task awaiting it.
    pub(crate) fn set(self, value: T) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).value = Some(value);
    }
}

impl<T> Drop for Setter<T> {
    fn drop(&mut self) {
        let waker = {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.closed = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Once<T> {
    /// The value, or `None` when the setter was dropped without setting one.
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match st.value.take() {
            Some(v) => Poll::Ready(Some(v)),
            None if st.closed => Poll::Ready(None),
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
