//! Ids between the API and the domain: an `ID` argument is client text and
//! becomes a typed id here, once. Outgoing, every id type converts into an
//! `ID` as its plain text (`id.clone().into()`).

use async_graphql::ID;

use crate::{
    error::AppError,
    ids::{IdFilter, PublicId},
};

/// The id `given` names. Text that cannot be an id of this kind is
/// `NOT_FOUND`, as a lookup of it would be: no such row can exist.
pub fn parse<T: PublicId>(given: &ID) -> Result<T, AppError> {
    T::parse(given).ok_or(AppError::NotFound(T::NOUN))
}

/// A filter argument: text that cannot be an id of this kind matches
/// nothing rather than being refused.
pub fn filter<T: PublicId + PartialEq>(given: Option<&ID>) -> Option<IdFilter<T>> {
    given.map(|id| IdFilter::parse(id))
}
