package dev.blenderjobs.model;

/** Why a job left the server's table (and its directory was deleted). */
public enum RemovalReason {
    /** The client asked: {@code removeJob}. */
    REMOVED,
    /** A new job with the same name was added with {@code replaceExisting}. */
    REPLACED,
    /** The retention policy ({@code --retain-jobs}, {@code --retain-days}) pruned it. */
    RETENTION
}
