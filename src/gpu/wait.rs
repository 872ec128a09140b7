//! A value that a wgpu callback sets once and a caller awaits: the end of a buffer mapping, on native
//! targets (where the caller polls the device first, so the value is there at the first look) and in
//! the browser (where the event loop delivers it later). No executor or channel crate needed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

struct State<T> {
    value: Option<T>,
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
    let state = Arc::new(Mutex::new(State { value: None, waker: None }));
    (Setter { state: state.clone() }, Once { state })
}

impl<T> Setter<T> {
    /// Stores the value and wakes the task awaiting it.
    pub(crate) fn set(self, value: T) {
        let waker = {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.value = Some(value);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Once<T> {
    /// The value if it has been set (native targets, after polling the device to completion).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn try_take(&self) -> Option<T> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).value.take()
    }
}

impl<T> Future for Once<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match st.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
