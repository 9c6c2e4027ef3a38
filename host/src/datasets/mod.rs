//! Datasets in their official layouts.

pub mod cifar10;
