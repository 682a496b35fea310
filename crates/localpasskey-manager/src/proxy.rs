//! The client side of `org.localpasskey.Manager1`, written from the
//! introspection XML the daemon serves (crates/localpasskey/dbus/); a test
//! compares the two, so a change to the interface cannot go unnoticed here.

use std::collections::HashMap;

use zbus::zvariant::OwnedValue;

/// One `a{sv}` dictionary of the API.
pub type Dict = HashMap<String, OwnedValue>;

#[zbus::proxy(
    interface = "org.localpasskey.Manager1",
    default_service = "org.localpasskey.LocalPasskey",
    default_path = "/org/localpasskey/LocalPasskey",
    gen_blocking = false
)]
pub trait Manager1 {
    fn info(&self) -> zbus::Result<Dict>;
    fn list_passkeys(&self) -> zbus::Result<Vec<Dict>>;
    fn delete_passkey(&self, credential_id: &str) -> zbus::Result<()>;
    fn rename_user(&self, credential_id: &str, user_name: &str, display_name: &str) -> zbus::Result<()>;
    fn pin_status(&self) -> zbus::Result<Dict>;
    fn set_pin(&self) -> zbus::Result<()>;
    fn change_pin(&self) -> zbus::Result<()>;
    fn health(&self) -> zbus::Result<Vec<Dict>>;
    fn recent_activity(&self, limit: u32) -> zbus::Result<Vec<Dict>>;

    #[zbus(signal)]
    fn passkeys_changed(&self) -> zbus::Result<()>;
    #[zbus(signal)]
    fn activity_added(&self, entry: Dict) -> zbus::Result<()>;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// The methods and signals of the checked-in XML with their signatures
    /// (in arguments, out arguments), which this proxy must match.
    fn from_xml() -> BTreeMap<String, (String, String)> {
        let xml = include_str!("../../localpasskey/dbus/org.localpasskey.Manager1.xml");
        let node = zbus_xml::Node::from_reader(xml.as_bytes()).expect("the XML parses");
        let iface = node
            .interfaces()
            .iter()
            .find(|i| i.name() == "org.localpasskey.Manager1")
            .expect("the interface is in the XML");
        let mut out = BTreeMap::new();
        for m in iface.methods() {
            let sig = |dir: zbus_xml::ArgDirection| -> String {
                m.args()
                    .iter()
                    .filter(|a| a.direction() == Some(dir))
                    .map(|a| a.ty().to_string())
                    .collect()
            };
            out.insert(
                m.name().to_string(),
                (sig(zbus_xml::ArgDirection::In), sig(zbus_xml::ArgDirection::Out)),
            );
        }
        for s in iface.signals() {
            let args: String = s.args().iter().map(|a| a.ty().to_string()).collect();
            out.insert(format!("signal {}", s.name()), (args, String::new()));
        }
        out
    }

    #[test]
    fn proxy_matches_the_introspection_xml() {
        let want: BTreeMap<String, (String, String)> = [
            ("Info", "", "a{sv}"),
            ("ListPasskeys", "", "aa{sv}"),
            ("DeletePasskey", "s", ""),
            ("RenameUser", "sss", ""),
            ("PinStatus", "", "a{sv}"),
            ("SetPin", "", ""),
            ("ChangePin", "", ""),
            ("Health", "", "aa{sv}"),
            ("RecentActivity", "u", "aa{sv}"),
            ("signal PasskeysChanged", "", ""),
            ("signal ActivityAdded", "a{sv}", ""),
        ]
        .into_iter()
        .map(|(n, i, o)| (n.to_string(), (i.to_string(), o.to_string())))
        .collect();
        assert_eq!(from_xml(), want);
    }
}
