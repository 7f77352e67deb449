//! Unit tests of the contract, one module per section of `lib.rs`.

mod payload {
    #![allow(clippy::unwrap_used)]
    use crate::*;
    use serde_json::json;

    fn ups_event() -> UpsEvent {
        UpsEvent {
            id: Uuid::nil(),
            at: "2026-01-01T00:00:00.000Z".into(),
            ups: "dummy@127.0.0.1:34930".into(),
            kind: "ONBATT".into(),
            status: "OB DISCHRG".into(),
            battery: Battery {
                charge: Some(60.0),
                runtime_s: Some(600),
            },
        }
    }

    #[test]
    fn ups_event_wire_shape() {
        let e = ups_event();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"id": Uuid::nil(), "at": "2026-01-01T00:00:00.000Z",
                "ups": "dummy@127.0.0.1:34930", "type": "ONBATT", "status": "OB DISCHRG",
                "battery_charge": 60, "battery_runtime_s": 600})
        );
        let commloss = UpsEvent {
            kind: "COMMBAD".into(),
            status: String::new(),
            battery: Battery::default(),
            ..e
        };
        let v = serde_json::to_value(&commloss).unwrap();
        assert_eq!(v["status"], "");
        assert!(v.get("battery_charge").is_none() && v.get("battery_runtime_s").is_none());
    }

    #[test]
    fn fractional_charge_stays_a_float() {
        let e = UpsEvent {
            battery: Battery {
                charge: Some(57.5),
                runtime_s: None,
            },
            ..ups_event()
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"battery_charge\":57.5"), "{text}");
        let back: UpsEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn heartbeat_asks_for_a_lease_only_when_fencing() {
        let mut beat = Heartbeat {
            id: Uuid::nil(),
            at: "2026-01-01T00:00:00.000Z".into(),
            nodes_ready: 3,
            nodes_total: 3,
            ups_status: None,
            battery: Battery::default(),
            api_ok: true,
            lease: false,
        };
        let v = serde_json::to_value(&beat).unwrap();
        assert!(v.get("lease").is_none(), "{v}");
        assert!(
            v.get("battery_charge").is_none() && v.get("battery_runtime_s").is_none(),
            "unknown battery: no fields: {v}"
        );
        beat.lease = true;
        beat.ups_status = Some("OB DISCHRG".into());
        beat.battery = Battery {
            charge: Some(57.0),
            runtime_s: Some(612),
        };
        let v = serde_json::to_value(&beat).unwrap();
        assert_eq!(
            (
                &v["lease"],
                &v["ups_status"],
                &v["battery_charge"],
                &v["battery_runtime_s"]
            ),
            (&json!(true), &json!("OB DISCHRG"), &json!(57), &json!(612))
        );
    }

    #[test]
    fn nulls_read_as_absent() {
        let w: WitnessReport = serde_json::from_value(json!({"id": Uuid::nil(),
            "at": "2026-01-01T00:00:00Z", "target": "t", "reachable": false, "latency_ms": null}))
        .unwrap();
        assert_eq!(w.latency_ms, None);
    }

    #[test]
    fn a_bad_id_is_named() {
        let e = serde_json::from_value::<WitnessReport>(json!({"id": "nope",
            "at": "2026-01-01T00:00:00Z", "target": "t", "reachable": true}))
        .unwrap_err();
        assert!(
            e.to_string().contains("id must be a UUID, got \"nope\""),
            "{e}"
        );
    }

    #[test]
    fn routes_map_both_ways() {
        for p in Payload::ALL {
            assert_eq!(Payload::for_route(p.route()), Some(p));
        }
        assert_eq!(Payload::for_route("/api/status"), None);
    }

    #[test]
    fn rfc3339_millis_utc() {
        let t = DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456+00:00").unwrap();
        assert_eq!(rfc3339(t.with_timezone(&Utc)), "2026-03-01T12:00:00.123Z");
    }
}

mod http {
    use crate::*;

    #[test]
    fn json_with_parameters_is_accepted_in_any_case() {
        assert_eq!(check_body(Some("application/json"), 10), Ok(()));
        assert_eq!(
            check_body(Some("Application/JSON; charset=utf-8"), 10),
            Ok(())
        );
    }

    #[test]
    fn size_is_checked_before_type() {
        let too_big = check_body(Some("text/plain"), BODY_LIMIT + 1).unwrap_err();
        assert_eq!((too_big.status(), too_big.code()), (413, "body_too_large"));
        assert_eq!(check_body(Some("application/json"), BODY_LIMIT), Ok(()));
    }

    #[test]
    fn other_types_name_what_was_sent() {
        let e = check_body(Some("text/plain"), 2).unwrap_err();
        assert_eq!((e.status(), e.code()), (415, "unsupported_media_type"));
        assert!(e.to_string().contains("\"text/plain\""), "{e}");
        let missing = check_body(None, 2).unwrap_err();
        assert!(missing.to_string().contains("got \"\""), "{missing}");
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("ééé", 3), "ééé");
        assert_eq!(truncate("éééé", 3), "ééé…");
    }
}

mod input {
    #![allow(clippy::unwrap_used)]
    use crate::*;

    const ID: &str = "0b7e6f6a-6f0e-4c8e-9a53-2f1f7d4f2a10";

    #[test]
    fn contract_payloads_parse_and_unknown_fields_are_ignored() {
        let body = format!(
            r#"{{"id":"{ID}","at":"2026-01-10T12:00:00Z","ups":"dummy@127.0.0.1","type":"SUSPEND_STARTING","status":"OB DISCHRG","battery_charge":55,"extra":[1,2]}}"#
        );
        let Input::Ups(e) = Payload::Ups.parse(body.as_bytes()).unwrap() else {
            panic!("not a UPS input")
        };
        assert_eq!(e.id, ID);
        assert_eq!(e.notify, NotifyType::Other("SUSPEND_STARTING".into()));
        assert_eq!(e.status.to_string(), "OB DISCHRG");
        assert_eq!(e.battery_charge, Some(55.0));
    }

    #[test]
    fn errors_name_the_field() {
        let cases: [(Payload, String, &str); 6] = [
            (
                Payload::Ups,
                r#"{"at":"2026-01-10T12:00:00Z","ups":"u","type":"ONBATT","status":"OB"}"#.into(),
                "missing field `id`",
            ),
            (
                Payload::Heartbeat,
                format!(
                    r#"{{"id":"{ID}","at":"2026-01-10T12:00:00Z","nodes_ready":5,"nodes_total":3,"api_ok":true}}"#
                ),
                "nodes_ready",
            ),
            (
                Payload::Witness,
                r#"{"id":"nope","at":"2026-01-10T12:00:00Z","target":"t","reachable":true}"#.into(),
                "id must be a UUID",
            ),
            (
                Payload::Ups,
                format!(
                    r#"{{"id":"{ID}","at":"2026-01-10T12:00:00Z","ups":"u","type":"ONBATT","status":"OB","battery_charge":150}}"#
                ),
                "battery_charge",
            ),
            (
                Payload::Witness,
                format!(r#"{{"id":"{ID}","at":"yesterday","target":"t","reachable":true}}"#),
                "at must be an RFC 3339 time",
            ),
            (
                Payload::Heartbeat,
                format!(
                    r#"{{"id":"{ID}","at":"2026-01-10T12:00:00Z","nodes_ready":1,"nodes_total":1,"api_ok":true,"ups_status":"OL\u0007"}}"#
                ),
                "ups_status must be at most 256 printable characters",
            ),
        ];
        for (payload, body, want) in cases {
            let e = payload.parse(body.as_bytes()).unwrap_err();
            assert!(e.0.contains(want), "{payload:?} {body}: {e}");
        }
        assert!(Payload::Ups.parse(b"{\"id\":").is_err());
    }

    /// Caught by the round trip of fuzz/ wire_payload: year 0000 with a positive offset is
    /// year -1 in UTC (9999 with a negative one, 10000), accepted but impossible to re-send.
    #[test]
    fn at_must_have_a_utc_form() {
        let body = |at: &str| {
            format!(r#"{{"id":"{ID}","at":"{at}","target":"t","reachable":true}}"#).into_bytes()
        };
        for at in ["0000-01-01T00:00:00+01:00", "9999-12-31T23:00:00-01:00"] {
            let e = Payload::Witness.parse(&body(at)).unwrap_err();
            assert!(e.0.contains("at must be an RFC 3339 time"), "{at}: {e}");
        }
        for at in [
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "0000-01-01T01:00:00+01:00",
        ] {
            let input = Payload::Witness.parse(&body(at)).unwrap();
            let (payload, resent) = agent_request(&input).unwrap();
            assert_eq!(payload.parse(&resent).unwrap(), input, "{at}");
        }
    }

    #[test]
    fn named_ids_get_stable_uuids_and_uuids_stay() {
        assert_eq!(wire_id("ups-1"), wire_id("ups-1"));
        assert_ne!(wire_id("ups-1"), wire_id("ups-2"));
        assert_eq!(wire_id(ID).to_string(), ID);
    }

    #[test]
    fn core_inputs_travel_and_come_back() {
        let at = Timestamp::parse_rfc3339("2026-01-10T12:00:00.250Z").unwrap();
        let beat = Input::Heartbeat(burst_core::Heartbeat {
            id: ID.into(),
            at,
            nodes_ready: 2,
            nodes_total: 3,
            ups_status: Some(UpsStatus::parse("OB DISCHRG")),
            battery_charge: Some(41.5),
            battery_runtime_s: Some(300),
            api_ok: true,
            lease: true,
        });
        let (payload, body) = agent_request(&beat).unwrap();
        assert_eq!(payload, Payload::Heartbeat);
        assert_eq!(payload.parse(&body).unwrap(), beat);
        assert!(agent_request(&Input::Tick).is_none());
    }
}

mod auth {
    #![allow(clippy::unwrap_used)]
    use crate::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";
    /// Test-only Ed25519 key pair (generated for these tests; protects nothing).
    const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIClZzOJsgg0Jpj93h7yYhz52I3fF8pzdm0Ul57cvvVZ7\n-----END PRIVATE KEY-----\n";
    const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA61EeDC3b9sWDUu2KPsf925Q48itt0YuS3s4QjGOrQPk=\n-----END PUBLIC KEY-----\n";
    const NOW: i64 = 1_772_409_600;

    fn hs() -> (Signer, AgentKey) {
        (
            Signer::hs256("home", SECRET.as_bytes()).unwrap(),
            AgentKey::hs256(SECRET).unwrap(),
        )
    }

    fn signed(iat: i64, exp: i64, body: &[u8]) -> String {
        let claims = Claims {
            iat,
            exp,
            ..Claims::for_body("home", body, iat)
        };
        hs().0.sign(&claims).unwrap()
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            body_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn signed_tokens_verify_and_bind_the_body() {
        let (signer, key) = hs();
        let body = br#"{"id":"x"}"#;
        let t1 = signer.token(body, NOW).unwrap();
        let t2 = signer.token(body, NOW).unwrap();
        let header = jsonwebtoken::decode_header(&t1).unwrap();
        assert_eq!(
            (header.alg, header.typ.as_deref()),
            (Algorithm::HS256, Some("JWT"))
        );
        let c1 = verify(&key, &t1, body, NOW).unwrap();
        let c2 = verify(&key, &t2, body, NOW).unwrap();
        assert_eq!((c1.iss.as_str(), c1.aud.as_str()), ("home", AUDIENCE));
        assert_eq!((c1.iat, c1.exp - c1.iat), (NOW, TOKEN_LIFETIME_S));
        assert_ne!(c1.jti, c2.jti, "every token gets a fresh jti");
        uuid::Uuid::parse_str(&c1.jti).unwrap();
        assert_eq!(
            verify(&key, &t1, b"{}", NOW).unwrap_err(),
            AuthError::BodyMismatch
        );
    }

    #[test]
    fn the_claimed_issuer_is_read_without_the_key() {
        let (signer, _) = hs();
        let token = signer.token(b"{}", NOW).unwrap();
        assert_eq!(claimed_issuer(&token).unwrap(), "home");
        for bad in ["", "a.b", "x.y.z", "a.e30.c"] {
            assert_eq!(
                claimed_issuer(bad).unwrap_err(),
                AuthError::BadToken,
                "{bad}"
            );
        }
    }

    #[test]
    fn eddsa_round_trip_and_pinned_algorithm() {
        let signer = Signer::ed25519_pem("site-a", PRIVATE_PEM.as_bytes()).unwrap();
        let token = signer.token(b"body", NOW).unwrap();
        // Settings may carry the PEM with escaped newlines.
        let key = AgentKey::ed25519_pem(&PUBLIC_PEM.replace('\n', "\\n")).unwrap();
        assert_eq!(key.algorithm(), Algorithm::EdDSA);
        let claims = verify(&key, &token, b"body", NOW).unwrap();
        assert_eq!(claims.iss, "site-a");
        // An HS256 token is refused where EdDSA is configured, and the other way round.
        let hs_token = hs().0.token(b"body", NOW).unwrap();
        assert_eq!(
            verify(&key, &hs_token, b"body", NOW).unwrap_err(),
            AuthError::WrongAlgorithm
        );
        assert_eq!(
            verify(&hs().1, &token, b"body", NOW).unwrap_err(),
            AuthError::WrongAlgorithm
        );
    }

    #[test]
    fn debug_output_hides_the_keys() {
        let (signer, key) = hs();
        let shown = format!("{signer:?} {key:?}");
        assert!(shown.contains("HS256") && shown.contains("home"), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert_eq!(shown.matches("<key>").count(), 2, "{shown}");
    }

    #[test]
    fn bad_keys_are_rejected_at_load() {
        assert!(matches!(
            Signer::ed25519_pem("s", b"not a pem"),
            Err(SignError::BadKey(_))
        ));
        assert!(
            Signer::ed25519_pem("s", PUBLIC_PEM.as_bytes()).is_err(),
            "a public key is not a signing key"
        );
        assert_eq!(Signer::hs256("s", b"").unwrap_err(), SignError::EmptySecret);
        assert_eq!(
            AgentKey::ed25519_pem("nope").unwrap_err(),
            KeyError::BadPublicKey
        );
        assert_eq!(AgentKey::hs256("short").unwrap_err(), KeyError::ShortSecret);
    }

    #[test]
    fn claim_checks_each_have_their_error() {
        let (signer, key) = hs();
        let body = b"{}";
        let base = Claims::for_body("home", body, NOW);
        let cases = [
            (
                Claims {
                    aud: "other".into(),
                    ..base.clone()
                },
                "wrong_audience",
            ),
            (
                Claims {
                    iss: String::new(),
                    ..base.clone()
                },
                "invalid_claims",
            ),
            (
                Claims {
                    jti: "x".repeat(MAX_JTI_LEN + 1),
                    ..base.clone()
                },
                "invalid_claims",
            ),
            (
                Claims {
                    nbf: Some(NOW + LEEWAY_S + 1),
                    ..base.clone()
                },
                "token_not_yet_valid",
            ),
            (
                Claims {
                    body_sha256: body_sha256(b"other"),
                    ..base.clone()
                },
                "body_hash_mismatch",
            ),
        ];
        for (claims, code) in cases {
            let token = signer.sign(&claims).unwrap();
            assert_eq!(
                verify(&key, &token, body, NOW).unwrap_err().code(),
                code,
                "{claims:?}"
            );
        }
        // Within the leeway on both ends.
        let nbf_soon = Claims {
            nbf: Some(NOW + LEEWAY_S),
            ..base
        };
        assert!(verify(&key, &signer.sign(&nbf_soon).unwrap(), body, NOW).is_ok());
        let late = signed(NOW - TOKEN_LIFETIME_S - LEEWAY_S, NOW - LEEWAY_S, body);
        assert!(verify(&key, &late, body, NOW).is_ok());
        assert_eq!(
            verify(&key, &late, body, NOW + 1).unwrap_err(),
            AuthError::Expired
        );
        assert_eq!(
            verify(&key, "not.a.token", body, NOW).unwrap_err(),
            AuthError::BadToken
        );
    }

    #[test]
    fn extreme_times_are_refused_without_overflow() {
        let key = hs().1;
        let body = b"{}";
        let cases = [
            (i64::MIN, i64::MAX, AuthError::TooLong),
            (i64::MAX, i64::MIN, AuthError::TooLong),
            (i64::MIN, i64::MIN + 10, AuthError::Expired),
            (i64::MAX - 10, i64::MAX, AuthError::NotYetValid),
            (NOW - 100, i64::MAX, AuthError::TooLong),
            (i64::MIN, NOW, AuthError::TooLong),
        ];
        for (iat, exp, want) in cases {
            let got = verify(&key, &signed(iat, exp, body), body, NOW).unwrap_err();
            assert_eq!(got, want, "iat {iat}, exp {exp}");
        }
        // Extreme clocks on our side do not overflow either.
        let t = signed(NOW, NOW + 60, body);
        assert_eq!(
            verify(&key, &t, body, i64::MAX).unwrap_err(),
            AuthError::Expired
        );
        assert_eq!(
            verify(&key, &t, body, i64::MIN).unwrap_err(),
            AuthError::NotYetValid
        );
        assert!(verify(&key, &t, body, NOW).is_ok());
    }

    #[test]
    fn bearer_needs_the_scheme_and_a_token() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer  "),
            Some("Basic abc"),
        ] {
            assert_eq!(bearer(bad), Err(AuthError::Missing), "{bad:?}");
        }
    }
}
