//! The plugin guides in `docs/plugins/` show the example plugins' code: every
//! block marked `<!-- file: PATH -->` must be exactly that file, so the guides
//! cannot drift from code that CI builds and runs.

mod common;

use common::root;

#[test]
fn every_guide_quotes_its_example_plugin_exactly() {
    for guide in ["rust", "python", "javascript", "c"] {
        let path = root().join("docs/plugins").join(format!("{guide}.md"));
        let text = std::fs::read_to_string(&path).expect("guide exists");
        let mut quoted = 0;
        let mut rest = text.as_str();
        while let Some(at) = rest.find("<!-- file: ") {
            let after = &rest[at + "<!-- file: ".len()..];
            let (file, after) = after.split_once(" -->\n").expect("marker closes");
            let after = after.split_once('\n').expect("a fenced block follows").1;
            let (block, after) = after.split_once("```").expect("the block closes");
            let actual = std::fs::read_to_string(root().join(file))
                .unwrap_or_else(|e| panic!("{guide}: {file}: {e}"));
            assert_eq!(block, actual, "{guide}.md quotes {file} as it is");
            quoted += 1;
            rest = after;
        }
        assert!(
            quoted >= 2,
            "{guide}.md quotes the plugin's code and manifest"
        );
    }
}
