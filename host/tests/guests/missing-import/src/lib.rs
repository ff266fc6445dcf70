//! Test fixture: a component that imports `example:nope/pager`, which no
//! gridlet host provides, so it cannot be linked.

wit_bindgen::generate!({
    inline: r#"
        package example:nope;
        interface pager {
            page: func(message: string);
        }
        world missing {
            import pager;
            export run: func();
        }
    "#,
});

struct Missing;

impl Guest for Missing {
    fn run() {
        example::nope::pager::page("the host cannot link this");
    }
}

export!(Missing);
