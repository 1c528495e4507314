//! Placement compatibility with the proxies keyway replaces: keys written
//! through the real nutcracker (twemproxy 0.5.0, ketama) and the real Envoy
//! (redis_proxy with RING_HASH or MAGLEV) must be where keyway's rings say,
//! over the same endpoints, so switching proxies needs no resharding.
use crate::common::*;
use keyway::config::Config;
use keyway::topology::router::Router;
use keyway::topology::Topology;

/// Keys with hashtags, binary bytes >= 0x80 (C's signed char), and plain ones.
fn sample_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = (0..1500).map(|i| format!("key:{i}").into_bytes()).collect();
    keys.extend((0..200).map(|i| format!("{{tag{}}}:member:{i}", i % 13).into_bytes()));
    keys.extend((0..200u32).map(|i| {
        let mut k = b"bin:".to_vec();
        k.extend([0x80 | (i % 128) as u8, 0xff, (i * 7 % 256) as u8]);
        k
    }));
    keys.extend((0..100).map(|i| format!("{{}}empty-tag:{i}").into_bytes()));
    keys
}

/// Writes every key through the peer proxy, then checks that the backend
/// holding it is the one keyway's ring picks.
fn write_and_compare(peer_port: u16, backends: &[&Redis], topo: &Topology, what: &str) {
    let keys = sample_keys();
    let mut cl = Client::connect(peer_port);
    for chunk in keys.chunks(200) {
        let mut p = Vec::new();
        for k in chunk {
            p.extend(encode(&[b"SET", k, b"1"]));
        }
        cl.send_raw(&p);
        for k in chunk {
            let r = cl.read_reply().expect("reply from peer");
            assert_eq!(
                r,
                b"+OK\r\n",
                "{what}: SET {:?} through the peer",
                String::from_utf8_lossy(k)
            );
        }
    }
    let mut conns: Vec<Client> = backends.iter().map(|b| b.client()).collect();
    let mut mismatches = Vec::new();
    for k in &keys {
        let mut holders = Vec::new();
        for (i, c) in conns.iter_mut().enumerate() {
            c.send_raw(&encode(&[b"EXISTS", k]));
            if c.read_reply().unwrap() == b":1\r\n" {
                holders.push(i);
            }
        }
        let ours = Router::new(topo, &[]).primary(k).unwrap();
        if holders != vec![ours] {
            mismatches.push((String::from_utf8_lossy(k).into_owned(), holders, ours));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{what}: {} of {} keys placed differently, e.g. {:?}",
        mismatches.len(),
        keys.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    for b in backends {
        b.client().cmd(&["FLUSHALL"]);
    }
}

fn topology(policy: &str, extra: &str, endpoints: &str) -> Topology {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:1\"\n\n[[clusters]]\nname = \"c\"\nlb_policy = \"{policy}\"\n{extra}\nendpoints = [{endpoints}]\n\n[routes]\ncatch_all = \"c\"\n"
    );
    Topology::build(Config::parse(&text, "test.toml").expect("config"))
}

#[test]
fn ketama_matches_real_nutcracker() {
    let backends: Vec<Redis> = (0..4).map(|_| Redis::start()).collect();
    let refs: Vec<&Redis> = backends.iter().collect();
    let weights = [1, 1, 2, 1];
    let dir = scratch_dir("nutcracker");
    for hash in [
        "crc32",
        "crc32a",
        "crc16",
        "jenkins",
        "hsieh",
        "fnv1a_64",
        "md5",
        "murmur",
        "fnv1_64",
        "fnv1a_32",
        "fnv1_32",
        "one_at_a_time",
    ] {
        if keyway::route::hash::KetamaHash::parse(hash).is_none() {
            panic!("keyway lacks twemproxy hash {hash}");
        }
        let port = free_port();
        let servers: String = backends
            .iter()
            .zip(weights)
            .enumerate()
            .map(|(i, (b, w))| {
                // The last server has a name: twemproxy hashes it instead of host:port.
                if i == 3 {
                    format!("   - {}:{} node-d\n", b.addr(), w)
                } else {
                    format!("   - {}:{}\n", b.addr(), w)
                }
            })
            .collect();
        let conf = dir.join(&format!("nutcracker-{hash}.yml"));
        std::fs::write(
            &conf,
            format!(
                "pool:\n  listen: 127.0.0.1:{port}\n  hash: {hash}\n  hash_tag: \"{{}}\"\n  distribution: ketama\n  redis: true\n  auto_eject_hosts: false\n  timeout: 2000\n  servers:\n{servers}"
            ),
        )
        .unwrap();
        let _nc = start_nutcracker(&conf, port);
        let endpoints: Vec<String> = backends
            .iter()
            .zip(weights)
            .enumerate()
            .map(|(i, (b, w))| {
                let name = if i == 3 { ", name = \"node-d\"" } else { "" };
                format!("{{ address = \"{}\", weight = {w}{name} }}", b.addr())
            })
            .collect();
        let topo = topology(
            "ketama",
            &format!("hash = \"{hash}\""),
            &endpoints.join(", "),
        );
        write_and_compare(port, &refs, &topo, &format!("ketama/{hash}"));
    }
}

fn envoy_compare(policy: &str, lb_config: &str, keyway_extra: &str) {
    let backends: Vec<Redis> = (0..5).map(|_| Redis::start()).collect();
    let refs: Vec<&Redis> = backends.iter().collect();
    let weights = [1, 3, 1, 2, 1];
    let port = free_port();
    let yaml = envoy_redis_yaml(port, "", policy, lb_config, &refs, &weights);
    let dir = scratch_dir("envoy");
    let conf = dir.join("envoy.yaml");
    std::fs::write(&conf, yaml).unwrap();
    let _envoy = start_envoy(&conf, port);
    let endpoints: Vec<String> = backends
        .iter()
        .zip(weights)
        .map(|(b, w)| format!("{{ address = \"{}\", weight = {w} }}", b.addr()))
        .collect();
    let lb = if policy == "RING_HASH" {
        "ring_hash"
    } else {
        "maglev"
    };
    let topo = topology(lb, keyway_extra, &endpoints.join(", "));
    write_and_compare(port, &refs, &topo, policy);
}

#[test]
fn ring_hash_matches_real_envoy() {
    envoy_compare(
        "RING_HASH",
        "    ring_hash_lb_config: { minimum_ring_size: 1024 }",
        "min_ring_size = 1024",
    );
}

#[test]
fn maglev_matches_real_envoy() {
    envoy_compare("MAGLEV", "", "");
}
