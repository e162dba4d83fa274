//! Lambda entry point: build the product from the environment and serve the router, telling it
//! the address API Gateway was called at (for the links to uploads).

use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let chat = shared::environment::lambda_chat().await?;
    let app = api_messages::router(chat).map_request(with_public_base);
    lambda_http::run(app).await
}

/// `https://<domain>/<stage>` on API Gateway's own domain; a custom domain maps its stage itself.
fn with_public_base(mut req: lambda_http::Request) -> lambda_http::Request {
    if let Some(RequestContext::ApiGatewayV1(ctx)) = req.request_context_ref() {
        if let Some(domain) = ctx.domain_name.clone() {
            let base = match &ctx.stage {
                Some(stage) if domain.ends_with(".amazonaws.com") => {
                    format!("https://{domain}/{stage}")
                }
                _ => format!("https://{domain}"),
            };
            req.extensions_mut()
                .insert(shared::http::uploads::PublicBase(base));
        }
    }
    req
}
