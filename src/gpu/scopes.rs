//! The browser's deferred error scopes: a job's scopes are popped when it finishes and awaited later
//! ([`Context::settle`](crate::Context::settle); every download calls it), since nothing may block in a
//! page. A leaf: the job pushes these, the context holds and awaits them.

#[cfg(target_arch = "wasm32")]
use crate::error::Error;

/// A popped error scope's result, to await.
#[cfg(target_arch = "wasm32")]
pub(crate) type ScopeFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>;

/// The error scopes of one finished job in the browser, popped and not yet awaited.
#[cfg(target_arch = "wasm32")]
pub(crate) struct Deferred {
    kernel: &'static str,
    scopes: Vec<ScopeFuture>,
}

#[cfg(target_arch = "wasm32")]
impl Deferred {
    /// The scopes of the job whose first kernel was `kernel`.
    pub(crate) fn new(kernel: &'static str, scopes: Vec<ScopeFuture>) -> Self {
        Self { kernel, scopes }
    }

    /// The first error the job's scopes caught.
    pub(crate) async fn wait(self) -> Option<Error> {
        let mut first = None;
        for scope in self.scopes {
            if let Some(e) = scope.await {
                first.get_or_insert(Error::Wgpu { kernel: self.kernel.to_string(), message: crate::error::chain(&e) });
            }
        }
        first
    }
}
