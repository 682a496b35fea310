// Copyright 2020 Contributors to the Parsec project.
// SPDX-License-Identifier: Apache-2.0
pub mod select;
pub mod select_size;
pub mod selection;
pub mod slot;
pub mod slot_collection;
