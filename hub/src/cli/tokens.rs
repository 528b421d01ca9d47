//! `token create|list|revoke`.

use anyhow::Context;
use solarhub_hub::db;

use crate::TokenCommand;

pub(crate) fn token_command(
    conn: &mut db::DbConnection,
    action: TokenCommand,
) -> anyhow::Result<()> {
    use solarhub_hub::auth::{Role, principals};
    match action {
        TokenCommand::Create {
            name,
            role,
            collector_id,
            certificate_subject,
        } => {
            let role = Role::parse(&role).context("unknown role")?;
            let created = principals::create(
                conn,
                &name,
                role,
                collector_id.as_deref(),
                certificate_subject.as_deref(),
            )?;
            // The token alone on standard output (TOKEN=$(solarhub-hub token create …)); what it
            // is, on standard error.
            match &created.principal.collector_id {
                Some(id) => eprintln!("{role} token for {name}, bound to collector {id}:"),
                None => eprintln!("{role} token for {name}:"),
            }
            println!("{}", created.token.expose());
            if let Some(subject) = &created.principal.certificate_subject {
                eprintln!("a client certificate naming {subject} speaks as {name} too");
            }
            eprintln!("it is shown only now: the hub keeps its SHA-256, not the token");
            Ok(())
        }
        TokenCommand::List => {
            for principal in principals::list(conn)? {
                println!("{principal}");
            }
            Ok(())
        }
        TokenCommand::Revoke { name } => {
            principals::revoke(conn, &name)?;
            println!(
                "revoked {name}: every hub on this database refuses it within {} s",
                solarhub_hub::auth::authenticator::CACHE_TTL.as_secs()
            );
            Ok(())
        }
    }
}
