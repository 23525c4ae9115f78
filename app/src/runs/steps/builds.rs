//! Image builds from the services' build contexts.

use crate::runs::executor::{StepContext, StepLog};
use crate::stacks::compose::ServiceDefinition;
use crate::stacks::lifecycle;

impl<'a> StepContext<'a> {
    /// Builds the service's image, every line of the builder's output stored as it comes,
    /// the whole build bounded by [`lifecycle::BUILD_WITHIN`].
    pub(in crate::runs) async fn build(
        &self,
        service: &ServiceDefinition,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        use futures::StreamExt;
        let tag = service.image_name(&self.stack.project);
        let started = std::time::Instant::now();
        let building = async {
            let output =
                lifecycle::build(self.engine, &self.stack.project, service, &self.compose_dir)
                    .await
                    .map_err(|e| e.to_string())?;
            let mut output = std::pin::pin!(output);
            while let Some(line) = output.next().await {
                log.say(line.map_err(|e| format!("building {tag}: {e}"))?)
                    .await?;
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(lifecycle::BUILD_WITHIN, building)
            .await
            .map_err(|_| {
                format!(
                    "building {tag} took longer than {} minutes; it was stopped",
                    lifecycle::BUILD_WITHIN.as_secs() / 60
                )
            })??;
        log.say(format!(
            "built {tag} in {:.1} s",
            started.elapsed().as_secs_f64()
        ))
        .await
    }
}
