package dev.blenderjobs.workers.local;

import dev.blenderjobs.workers.Worker;
import dev.blenderjobs.workers.WorkerLauncher;
import dev.blenderjobs.workers.WorkerListener;

import java.nio.file.Path;
import java.time.Duration;

/**
 * Workers as Blender child processes of the server, each connecting back over its own loopback
 * socket. Each slot has a private folder under {@code workersDir} (Blender's config, temp
 * files, crash reports), reused by the slot's successive processes.
 *
 * @param startTimeout how long a starting Blender may take to connect back
 * @param stopGrace    how long a worker asked to stop may take before it is killed
 */
public record LocalLauncher(BlenderCommand command, Path workersDir, Duration startTimeout, Duration stopGrace,
                            Duration writeTimeout) implements WorkerLauncher {

    @Override
    public Worker launch(String id, WorkerListener listener) {
        String slot = id.contains(".") ? id.substring(0, id.indexOf('.')) : id;
        LocalWorker worker = new LocalWorker(id, workersDir.resolve(slot), this, listener);
        worker.start();
        return worker;
    }

    @Override
    public String name() {
        return "local";
    }
}
