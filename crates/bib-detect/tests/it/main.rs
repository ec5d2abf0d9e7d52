//! Integration tests of bib-detect: one binary, one module per subject.

mod photos;
