//! Generates plystractl's HTTP client with progenitor from the committed OpenAPI document, so
//! the commands that talk to a server use exactly the document the server is checked against.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let document = manifest.join("../openapi/plystra.v0.0.1.json");
    println!("cargo:rerun-if-changed={}", document.display());
    let text = std::fs::read_to_string(&document)
        .unwrap_or_else(|e| panic!("reading {}: {e}", document.display()));
    let spec: openapiv3::OpenAPI = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not an OpenAPI 3.0 document: {e}", document.display()));
    let tokens = progenitor::Generator::default()
        .generate_tokens(&spec)
        .unwrap_or_else(|e| panic!("progenitor cannot take {}: {e}", document.display()));
    let file: syn::File = syn::parse2(tokens).expect("progenitor generates valid Rust");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("plystra_api.rs");
    std::fs::write(&out, prettyplease::unparse(&file))
        .unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
