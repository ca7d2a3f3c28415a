//! The bank itself: one in-memory account per user (keyed by the token's `sub`), opened with a
//! balance and two payees on first sight. Nothing here knows about tokens or levels.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::money::Money;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payee {
    pub id: String,
    pub name: String,
    pub account: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transfer {
    pub id: u64,
    pub payee: String,
    pub amount: Money,
    /// Seconds since the epoch.
    pub at: i64,
    /// The level of the token that authorised it.
    pub acr: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub balance: Money,
    pub payees: Vec<Payee>,
    /// Newest first.
    pub transfers: Vec<Transfer>,
    #[serde(skip)]
    next_id: u64,
}

impl Account {
    fn opening() -> Account {
        let payee = |id: &str, name: &str, account: &str| Payee {
            id: id.into(),
            name: name.into(),
            account: account.into(),
        };
        Account {
            balance: Money::from_cents(1_245_000),
            payees: vec![
                payee("p1", "City Power & Light", "GB29 NWBK 6016 1331 9268 19"),
                payee("p2", "Northside Lettings", "DE89 3704 0044 0532 0130 00"),
            ],
            transfers: Vec::new(),
            next_id: 3,
        }
    }

    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Why the bank refused; each says so in one sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    #[error("That payee is not on your list.")]
    UnknownPayee,
    #[error("The balance does not cover that amount.")]
    InsufficientFunds,
    #[error("Enter an amount above zero.")]
    ZeroAmount,
    #[error("{0}")]
    InvalidPayee(&'static str),
}

#[derive(Default)]
pub struct Bank {
    accounts: Mutex<HashMap<String, Account>>,
}

impl Bank {
    fn with<T>(&self, sub: &str, f: impl FnOnce(&mut Account) -> T) -> T {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        f(accounts
            .entry(sub.to_owned())
            .or_insert_with(Account::opening))
    }

    pub fn account(&self, sub: &str) -> Account {
        self.with(sub, |a| a.clone())
    }

    pub fn transfer(
        &self,
        sub: &str,
        payee_id: &str,
        amount: Money,
        acr: Option<&str>,
        now: i64,
    ) -> Result<Transfer, BankError> {
        self.with(sub, |a| {
            if amount.cents() <= 0 {
                return Err(BankError::ZeroAmount);
            }
            let payee = a
                .payees
                .iter()
                .find(|p| p.id == payee_id)
                .ok_or(BankError::UnknownPayee)?;
            let payee = payee.name.clone();
            a.balance = a
                .balance
                .checked_sub(amount)
                .ok_or(BankError::InsufficientFunds)?;
            let transfer = Transfer {
                id: a.next(),
                payee,
                amount,
                at: now,
                acr: acr.map(str::to_owned),
            };
            a.transfers.insert(0, transfer.clone());
            a.transfers.truncate(20);
            Ok(transfer)
        })
    }

    pub fn add_payee(&self, sub: &str, name: &str, account: &str) -> Result<Payee, BankError> {
        let (name, account) = (name.trim(), account.trim());
        if name.is_empty() || name.len() > 60 {
            return Err(BankError::InvalidPayee(
                "Give the payee a name (up to 60 characters).",
            ));
        }
        if account.len() < 6 || account.len() > 40 {
            return Err(BankError::InvalidPayee(
                "Enter the payee's account number (6 to 40 characters).",
            ));
        }
        self.with(sub, |a| {
            let payee = Payee {
                id: format!("p{}", a.next()),
                name: name.to_owned(),
                account: account.to_owned(),
            };
            a.payees.push(payee.clone());
            Ok(payee)
        })
    }

    pub fn remove_payee(&self, sub: &str, payee_id: &str) -> Result<Payee, BankError> {
        self.with(sub, |a| {
            let at = a
                .payees
                .iter()
                .position(|p| p.id == payee_id)
                .ok_or(BankError::UnknownPayee)?;
            Ok(a.payees.remove(at))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_move_money_once() {
        let bank = Bank::default();
        let t = bank
            .transfer("u", "p1", Money::from_units(100), Some("loa1"), 1)
            .unwrap();
        assert_eq!(t.payee, "City Power & Light");
        assert_eq!(bank.account("u").balance, Money::from_cents(1_235_000));
        assert_eq!(
            bank.transfer("u", "p1", Money::from_units(1_000_000), None, 2)
                .unwrap_err(),
            BankError::InsufficientFunds
        );
        assert_eq!(
            bank.transfer("u", "nope", Money::from_units(1), None, 2)
                .unwrap_err(),
            BankError::UnknownPayee
        );
        assert_eq!(
            bank.account("other").balance,
            Money::from_cents(1_245_000),
            "accounts are per user"
        );
    }

    #[test]
    fn payees_are_added_and_removed() {
        let bank = Bank::default();
        let p = bank
            .add_payee("u", " Corner Shop ", "NL91ABNA0417164300")
            .unwrap();
        assert_eq!(p.name, "Corner Shop");
        assert_eq!(bank.account("u").payees.len(), 3);
        assert!(bank.add_payee("u", "", "NL91ABNA0417164300").is_err());
        bank.remove_payee("u", &p.id).unwrap();
        assert_eq!(bank.account("u").payees.len(), 2);
    }
}
