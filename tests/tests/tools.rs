//! The MCP surface as clients see it: `tools/list`, compared with a checked-in
//! snapshot so a change to any tool's name, description, schema or
//! annotations shows in review. Run with `UPDATE_SNAPSHOTS=1` to accept a change.

use anyhow::{Context, Result};
use codex_jobhost_e2e::World;
use serde_json::Value;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/tools_list.json");

#[tokio::test]
async fn tools_list_matches_its_snapshot_and_every_client_can_read_it() -> Result<()> {
    let world = World::new([])?;
    let server = world.serve().await?;
    let tools = server.client.list_all_tools().await?;
    let listed = serde_json::to_value(&tools)?;
    let text = serde_json::to_string_pretty(&listed)? + "\n";
    println!("tools/list: {} tools, {} bytes as compact JSON", tools.len(), serde_json::to_string(&listed)?.len());

    for tool in listed.as_array().context("a list")? {
        let name = tool["name"].as_str().unwrap_or_default();
        assert!(tool["outputSchema"].is_object(), "{name} has no outputSchema");
        assert!(tool["annotations"]["readOnlyHint"].is_boolean(), "{name} has no annotations");
        // Optional arguments are left out of `required`, never typed [X, "null"].
        for (arg, schema) in tool["inputSchema"]["properties"].as_object().context("properties")? {
            assert!(!schema["type"].is_array(), "{name}.{arg} has a type array: {schema}");
        }
    }
    let property = |tool: &str, arg: &str| -> Value {
        listed.as_array().unwrap().iter().find(|t| t["name"] == tool).unwrap()["inputSchema"]["properties"][arg].clone()
    };
    assert_eq!(
        property("job_start", "approval_policy")["enum"],
        serde_json::json!(["suggest", "auto-edit", "full-auto"])
    );
    assert!(property("job_start", "sandbox")["enum"].is_array());
    assert!(property("job_list", "status")["enum"].is_array());

    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &text)?;
    }
    let expected = std::fs::read_to_string(SNAPSHOT)
        .with_context(|| format!("{SNAPSHOT} is missing: run this test with UPDATE_SNAPSHOTS=1 and review it"))?;
    assert!(
        expected == text,
        "tools/list differs from {SNAPSHOT}; if the change is meant, run with UPDATE_SNAPSHOTS=1 and commit it.\n{text}"
    );
    Ok(())
}
