package dev.blenderjobs.jobs;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.nio.file.Path;

/**
 * A validated addJob request. Paths are the client's; the server copies what it needs into
 * the job's private directory before the job is queued.
 *
 * @param name           the client's label (never used in a path), may be null
 * @param scriptPath     absolute path of the client's script, or null when scriptText was given
 * @param scriptSource   the script's source text
 * @param timeoutSeconds 0 for none
 * @param passedLibrary  the passedDataBlocks library, or null
 * @param passedNames    {collection: [names]} or null for every block
 * @param blendFile      the .blend to run in (a private copy is made), or null
 * @param freshProcess   "isolation": "process"
 * @param replaceExisting cancel and remove jobs with the same name first
 * @param progressToken  the client's LSP work-done progress token (string or number), or null
 */
public record JobSpec(String name, Path scriptPath, String scriptSource, double timeoutSeconds,
                      JsonObject passedData, Path passedLibrary, JsonObject passedNames, Path blendFile,
                      int maxAttempts, boolean freshProcess, boolean replaceExisting, JsonElement progressToken) {
}
