//! A granted host *name* is not a granted *address*: names are resolved,
//! every address is checked, and the connection goes to the address that was
//! checked. Loopback, private networks and the metadata service are refused
//! whatever name or literal form leads there.

use crate::common::Recorder;
use crate::common::fort::{Extra, Fort};
use gridlet::plugin::PluginGrant;
use gridlet::runtime::{AllowList, ConfigValues, NetworkPolicy};

/// The operator grants `hosts` (and no private network) and `sink_url`.
fn granted(hosts: &[&str], sink_url: &str) -> PluginGrant {
    let mut config = ConfigValues::default();
    config.insert("sink_url", sink_url);
    PluginGrant {
        config,
        allowed_hosts: AllowList::parse(hosts).expect("hosts"),
        ..PluginGrant::default()
    }
}

const PROHIBITED: &str = "request to `<config:sink_url>` denied: its address is not granted (private or special network)";

#[tokio::test]
async fn an_allowed_name_that_resolves_to_loopback_is_refused() {
    let listener = Recorder::start().await;
    let port = listener.addr.port();
    let fort = Fort::start(
        vec![Extra::new(
            "rebinder",
            "echo",
            "",
            granted(
                &[&format!("localhost:{port}")],
                &format!("http://localhost:{port}/admin/plugins"),
            ),
        )],
        |_| {},
    )
    .await;
    assert_eq!(fort.post("loopback-1").await, 200);
    assert_eq!(fort.dead_letter("rebinder").await, PROHIBITED);
    fort.good_still_delivers().await;
    assert!(listener.received().is_empty(), "nothing reached loopback");
}

#[tokio::test]
async fn the_cloud_metadata_service_is_refused_without_a_connection() {
    let fort = Fort::start(
        vec![
            Extra::new(
                "imds",
                "echo",
                "",
                granted(
                    &["169.254.169.254"],
                    "http://169.254.169.254/metadata/instance?api-version=2021-02-01",
                ),
            ),
            Extra::new(
                "wireserver",
                "echo",
                "",
                granted(
                    &["168.63.129.16"],
                    "http://168.63.129.16/machine?comp=goalstate",
                ),
            ),
        ],
        |_| {},
    )
    .await;
    assert_eq!(fort.post("imds-1").await, 200);
    // Refused before connecting: had it tried, the 5 s connect timeout would
    // have made this a retry, not a dead letter.
    assert_eq!(fort.dead_letter("imds").await, PROHIBITED);
    assert_eq!(fort.dead_letter("wireserver").await, PROHIBITED);
    fort.good_still_delivers().await;
}

#[tokio::test]
async fn literal_forms_of_loopback_are_refused() {
    let listener = Recorder::start().await;
    let port = listener.addr.port();
    let forms = [
        ("hex", format!("http://0x7f000001:{port}/")),
        ("decimal", format!("http://2130706433:{port}/")),
        ("octal", format!("http://0177.0.0.1:{port}/")),
        ("short", format!("http://127.1:{port}/")),
        ("mapped", format!("http://[::ffff:127.0.0.1]:{port}/")),
        ("compatible", format!("http://[::127.0.0.1]:{port}/")),
        ("v6-loopback", format!("http://[::1]:{port}/")),
        ("unspecified", format!("http://0.0.0.0:{port}/")),
    ];
    let plugins: Vec<Extra> = forms
        .iter()
        .map(|(name, url)| {
            // A lone `*`: any host name at all, so only the address check stands.
            let name: &'static str = Box::leak(format!("literal-{name}").into_boxed_str());
            Extra::new(name, "echo", "", granted(&["*"], url))
        })
        .collect();
    let fort = Fort::start(plugins, |_| {}).await;
    assert_eq!(fort.post("literal-1").await, 200);
    for (name, url) in &forms {
        assert_eq!(
            fort.dead_letter(&format!("literal-{name}")).await,
            PROHIBITED,
            "{url}"
        );
    }
    fort.good_still_delivers().await;
    assert!(listener.received().is_empty(), "nothing reached loopback");
}

#[tokio::test]
async fn a_private_network_granted_to_one_plugin_is_not_granted_to_another() {
    let target = Recorder::start().await;
    let mut insider = granted(&[&target.host()], &target.url("/insider"));
    insider.networks = NetworkPolicy::parse(&["127.0.0.1/32"]).expect("cidr");
    let fort = Fort::start(
        vec![
            Extra::new("insider", "echo", "", insider),
            // The same host name, without the operator's private network.
            Extra::new(
                "neighbour",
                "echo",
                "",
                granted(&[&target.host()], &target.url("/neighbour")),
            ),
        ],
        |_| {},
    )
    .await;
    assert_eq!(fort.post("neighbour-1").await, 200);
    assert_eq!(fort.dead_letter("neighbour").await, PROHIBITED);
    crate::common::fort::wait("the insider to reach its target", || {
        target.received().iter().any(|r| r.path == "/insider")
    })
    .await;
    fort.good_still_delivers().await;
    assert!(
        target.received().iter().all(|r| r.path != "/neighbour"),
        "the neighbour reached nothing"
    );
}

#[test]
fn host_wide_private_networks_reach_every_plugin_and_per_plugin_ones_one() {
    use gridlet::serve::config::{PluginConfig, grants};
    let mut plugins = std::collections::BTreeMap::new();
    plugins.insert(
        "lab".to_string(),
        PluginConfig {
            allow_private_networks: Some(vec!["10.20.0.0/16".into()]),
            ..PluginConfig::default()
        },
    );
    let resolved = grants(
        vec!["127.0.0.1/32".into()],
        Default::default(),
        plugins,
        &|_| None,
    )
    .expect("grants");
    let ip = |s: &str| s.parse().expect("ip");
    let lab = &resolved.of("lab").networks;
    assert!(lab.check(ip("127.0.0.1")).is_ok());
    assert!(lab.check(ip("10.20.3.4")).is_ok());
    assert!(lab.check(ip("10.21.0.1")).is_err());
    let other = &resolved.of("anyone-else").networks;
    assert!(other.check(ip("127.0.0.1")).is_ok());
    assert!(other.check(ip("10.20.3.4")).is_err());
    assert!(other.check(ip("169.254.169.254")).is_err());
    let bad = grants(
        vec!["not-a-network".into()],
        Default::default(),
        Default::default(),
        &|_| None,
    )
    .expect_err("refused");
    assert_eq!(
        bad.to_string(),
        "allow_private_networks: `not-a-network` is not a CIDR like 10.0.0.0/8 or an address"
    );
}
