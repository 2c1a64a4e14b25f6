// Types of infra/kafka/acls.mjs, for the tests that check the table.
export declare const AclTopics: Record<string, string>;
export declare const GroupPrefix: Record<string, string>;
export declare const RoleAcls: Record<string, Array<[number, string, number, number]>>;
export declare function aclEntries(): Array<Record<string, string | number>>;
