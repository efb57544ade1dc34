package dev.blenderjobs.workers;

import com.google.gson.JsonObject;

import java.nio.file.Path;

/**
 * One attempt of a job, as the pool needs it: what to run and where its files go. Paths are
 * inside the job's private directory, chosen by the server, never by the client.
 *
 * @param scriptPath     the client's script path, for __file__, sys.path and tracebacks; null for scriptText
 * @param scriptSource   the script's source, read when the job was added
 * @param passedData     the client's passedData object (JSON, never pasted into source)
 * @param passedLibrary  private copy of the passedDataBlocks library, or null
 * @param passedNames    {collection: [names]} to append, or null for every block of the library
 * @param blendFile      private copy of the job's blendFile, or null for empty data
 * @param freshProcess   whether the attempt needs a Blender process that ran no other job
 */
public record RunRequest(
        String jobId,
        int attempt,
        String scriptPath,
        String scriptSource,
        JsonObject passedData,
        Path passedLibrary,
        JsonObject passedNames,
        Path blendFile,
        Path workDir,
        Path resultDir,
        JobLog log,
        boolean freshProcess) {

    /** The "run" message of the worker channel. */
    JsonObject toMessage() {
        JsonObject m = new JsonObject();
        m.addProperty("type", "run");
        m.addProperty("jobId", jobId);
        m.addProperty("attempt", attempt);
        JsonObject script = new JsonObject();
        if (scriptPath != null) script.addProperty("path", scriptPath);
        script.addProperty("source", scriptSource);
        m.add("script", script);
        m.add("passedData", passedData == null ? new JsonObject() : passedData);
        if (passedLibrary != null) m.addProperty("passedLibrary", passedLibrary.toString());
        if (passedNames != null) m.add("passedNames", passedNames);
        if (blendFile != null) m.addProperty("blendFile", blendFile.toString());
        m.addProperty("workDir", workDir.toString());
        m.addProperty("resultDir", resultDir.toString());
        return m;
    }
}
