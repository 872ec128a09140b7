//! The [`Group`] of an MPI job (cargo feature `mpi`, the `mpi` crate over the system's MPI): standard
//! collectives only, an `MPI_Allgather` of the lengths and an `MPI_Allgatherv` of the bytes, so no
//! custom reduction operation lets MPI reorder an addition.

use mpi::Count;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};

use super::Group;
use crate::error::{Error, Result};

/// The ranks of `MPI_COMM_WORLD`. Holds the MPI environment: MPI is finalised when it is dropped, and
/// can be initialised once per process.
pub struct MpiGroup {
    world: SimpleCommunicator,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

impl std::fmt::Debug for MpiGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MpiGroup {{ rank: {}, size: {} }}", self.world.rank(), self.world.size())
    }
}

impl MpiGroup {
    /// Initialises MPI and returns the world's group.
    ///
    /// # Errors
    /// [`Error::Peer`] when MPI was already initialised in this process.
    pub fn init() -> Result<Self> {
        let universe = mpi::initialize()
            .ok_or_else(|| Error::Peer { peer: 0, message: "MPI was already initialised in this process".into() })?;
        Ok(Self { world: universe.world(), _universe: universe })
    }

    /// Ends every rank of the job at once with `code` (`MPI_Abort`): for a rank that cannot go on and
    /// cannot tell the others through the protocol.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Group for MpiGroup {
    fn rank(&self) -> usize {
        usize::try_from(self.world.rank()).unwrap_or(0)
    }

    fn size(&self) -> usize {
        usize::try_from(self.world.size()).unwrap_or(1)
    }

    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let too_long = |what: usize| Error::Overflow {
            what: "an MPI message",
            detail: format!("{what} bytes exceed MPI's count type"),
        };
        let len = Count::try_from(mine.len()).map_err(|_| too_long(mine.len()))?;
        let mut counts: Vec<Count> = vec![0; self.size()];
        self.world.all_gather_into(&len, &mut counts[..]);
        let mut displs: Vec<Count> = Vec::with_capacity(counts.len());
        let mut total: usize = 0;
        for &c in &counts {
            displs.push(Count::try_from(total).map_err(|_| too_long(total))?);
            total += usize::try_from(c).unwrap_or(0);
        }
        let mut buf = vec![0u8; total];
        {
            let mut partition = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
            self.world.all_gather_varcount_into(mine, &mut partition);
        }
        let mut out = Vec::with_capacity(counts.len());
        let mut at = 0;
        for &c in &counts {
            let c = usize::try_from(c).unwrap_or(0);
            out.push(buf[at..at + c].to_vec());
            at += c;
        }
        Ok(out)
    }
}
