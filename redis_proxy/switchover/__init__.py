"""The one-command switchover: preflight, replicate, catch up, promote, fence, switch (see doc/switching.md)."""
